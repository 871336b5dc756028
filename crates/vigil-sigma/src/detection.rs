//! A rule's `detection`: search identifiers compiled into terms, and their evaluation.
//!
//! A search identifier is an OR of alternatives, each an AND of [`Term`]s. A term tests one
//! field (or, for keywords, every field) with compiled [`Pred`]s. Field names are resolved
//! to symbol ids when a rule is linked into a [`crate::RuleSet`], so evaluation reads record
//! fields by index.

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::condition::{self, Cond};
use crate::fxhash::FxBuildHasher;
use crate::record::{FieldValue, Record};
use crate::value::{
    Cidr, CmpOp, MAX_EXPANSION, Pred, RefMode, SigmaStr, base64_offsets, base64_plain, utf16,
};
use crate::yaml::{Node, ScalarKind};

/// Symbol id of keyword terms (no field).
pub(crate) const NO_SYM: u32 = u32::MAX;
/// Slot value of a field the record does not have.
pub(crate) const NO_FIELD: u32 = u32::MAX;
/// Most values one field condition may hold, after modifier expansion (SigmaHQ's largest,
/// the vulnerable-driver hash list, has about 4,400).
pub(crate) const MAX_VALUES: usize = 4 * MAX_EXPANSION;
/// Size limit for one compiled regular expression. Unicode classes are large: SigmaHQ's
/// `-k\s\w{1,64}...` needs about 2 MiB.
pub(crate) const REGEX_SIZE_LIMIT: usize = 4 << 20;
/// Equality alternatives above this many are looked up in a hash set.
const EQ_SET_MIN: usize = 8;
/// Substring alternatives above this many are searched with one Aho-Corasick automaton.
const AC_MIN: usize = 4;

/// What a term tests.
#[derive(Debug, Clone)]
pub(crate) enum TermKind {
    /// `Field: null`: the field is missing or null.
    Null,
    /// `Field|exists: bool`.
    Exists(bool),
    /// Any predicate matches. `null_ok`: the value list also held `null`.
    Any {
        preds: Vec<Pred>,
        cased: bool,
        null_ok: bool,
    },
    /// `|all`: every group has a matching predicate (a group is one rule value with its
    /// expansions, e.g. windash or base64offset variants).
    All { groups: Vec<Vec<Pred>>, cased: bool },
}

/// One field condition.
#[derive(Debug, Clone)]
pub(crate) struct Term {
    /// The record field name (after logsource renames); `None` for keywords.
    pub(crate) field: Option<Box<str>>,
    pub(crate) sym: u32,
    pub(crate) kind: TermKind,
    /// `neq`: the term's result is negated.
    pub(crate) negate: bool,
}

/// One search identifier: OR over alternatives, AND within one.
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    pub(crate) alts: Vec<Vec<Term>>,
}

/// A compiled detection before linking (field names not yet resolved).
#[derive(Debug, Clone)]
pub(crate) struct Detection {
    pub(crate) sels: Vec<Selection>,
    pub(crate) cond: Cond,
}

/// The record as evaluation sees it: fields by symbol id.
pub(crate) struct Ctx<'r> {
    pub(crate) rec: &'r Record,
    pub(crate) slots: &'r [u32],
}

impl<'r> Ctx<'r> {
    #[inline]
    pub(crate) fn field(&self, sym: u32) -> Option<&'r crate::record::Field> {
        let i = *self.slots.get(sym as usize)?;
        if i == NO_FIELD {
            None
        } else {
            self.rec.fields.get(i as usize)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Compilation from YAML
// ---------------------------------------------------------------------------------------

/// Compiles the `detection` mapping.
pub(crate) fn compile(det: &Node) -> Result<Detection, String> {
    let Node::Map(entries) = det else {
        return Err(format!(
            "`detection` must be a mapping, not {}",
            det.type_name()
        ));
    };
    let mut sels: Vec<Selection> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut cond_node = None;
    for (k, v) in entries {
        let Some(key) = k.as_str() else {
            return Err("a `detection` key is not a string".into());
        };
        match key {
            "condition" => cond_node = Some(v),
            // Only meaningful with aggregations/correlations; a plain rule ignores it.
            "timeframe" => {}
            name => {
                if names.iter().any(|n| n == name) {
                    return Err(format!("duplicate search identifier `{name}`"));
                }
                let sel =
                    compile_selection(v).map_err(|e| format!("search identifier `{name}`: {e}"))?;
                names.push(name.to_string());
                sels.push(sel);
            }
        }
    }
    let cond_node = cond_node.ok_or("missing `detection.condition`")?;
    if sels.is_empty() {
        return Err("`detection` has no search identifier".into());
    }
    let cond = match cond_node {
        Node::Seq(items) if !items.is_empty() => {
            // Deprecated list form: any of the conditions.
            let mut alts = Vec::new();
            for item in items {
                let s = item
                    .as_str()
                    .ok_or("`condition` list items must be strings")?;
                alts.push(condition::parse(s, &names)?);
            }
            if alts.len() == 1 {
                alts.pop().ok_or("empty condition")?
            } else {
                Cond::Or(alts)
            }
        }
        n => match n.as_str() {
            Some(s) => condition::parse(s, &names)?,
            None => {
                return Err(format!(
                    "`condition` must be a string, not {}",
                    n.type_name()
                ));
            }
        },
    };
    Ok(Detection { sels, cond })
}

fn compile_selection(v: &Node) -> Result<Selection, String> {
    let mut alts = Vec::new();
    match v {
        Node::Map(entries) => alts.push(compile_map(entries)?),
        Node::Seq(items) => {
            if items.is_empty() {
                return Err("empty list".into());
            }
            let mut keywords = Vec::new();
            for item in items {
                match item {
                    Node::Map(entries) => alts.push(compile_map(entries)?),
                    Node::Seq(_) => return Err("nested list".into()),
                    n if n.is_null() => return Err("null keyword".into()),
                    n => keywords.push(n.clone()),
                }
            }
            if !keywords.is_empty() {
                alts.push(vec![compile_term("", &[], &Node::Seq(keywords))?]);
            }
        }
        n if n.is_null() => return Err("empty".into()),
        n => alts.push(vec![compile_term("", &[], n)?]),
    }
    Ok(Selection { alts })
}

fn compile_map(entries: &[(Node, Node)]) -> Result<Vec<Term>, String> {
    if entries.is_empty() {
        return Err("empty mapping".into());
    }
    let mut seen: HashSet<&str> = HashSet::new();
    let mut terms = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let key = k.as_str().ok_or("a field name is not a string")?;
        if !seen.insert(key) {
            return Err(format!("duplicate key `{key}`"));
        }
        let mut parts = key.split('|');
        let field = parts.next().unwrap_or("");
        let mods: Vec<&str> = parts.collect();
        terms.push(compile_term(field, &mods, v).map_err(|e| format!("`{key}`: {e}"))?);
    }
    Ok(terms)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    Contains,
    Startswith,
    Endswith,
    Windash,
    Base64,
    Base64Offset,
    Utf16Le,
    Utf16Be,
    Utf16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Re,
    Cidr,
    Exists,
    Cmp(CmpOp),
    FieldRef,
}

enum Stage {
    Str(SigmaStr),
    Bytes(Vec<u8>),
}

/// Compiles one `field|modifiers: value(s)` condition (`field` empty for keywords).
pub(crate) fn compile_term(field: &str, mods: &[&str], value: &Node) -> Result<Term, String> {
    let mut all = false;
    let mut cased = false;
    let mut negate = false;
    let mut kind = Kind::Str;
    let mut transforms: Vec<(Transform, &str)> = Vec::new();
    let (mut re_i, mut re_m, mut re_s) = (false, false, false);
    for &m in mods {
        let set_kind = |kind: &mut Kind, k: Kind| -> Result<(), String> {
            if *kind != Kind::Str {
                return Err(format!(
                    "modifier `{m}` cannot be combined with another type modifier"
                ));
            }
            *kind = k;
            Ok(())
        };
        match m {
            "all" => all = true,
            "cased" => cased = true,
            "neq" => negate = true,
            "contains" => transforms.push((Transform::Contains, m)),
            "startswith" => transforms.push((Transform::Startswith, m)),
            "endswith" => transforms.push((Transform::Endswith, m)),
            "windash" => transforms.push((Transform::Windash, m)),
            "base64" => transforms.push((Transform::Base64, m)),
            "base64offset" => transforms.push((Transform::Base64Offset, m)),
            "wide" | "utf16le" => transforms.push((Transform::Utf16Le, m)),
            "utf16be" => transforms.push((Transform::Utf16Be, m)),
            "utf16" => transforms.push((Transform::Utf16, m)),
            "re" => {
                if !transforms.is_empty() {
                    return Err("modifier `re` only applies to unmodified values".into());
                }
                set_kind(&mut kind, Kind::Re)?;
            }
            "i" | "ignorecase" => re_i = true,
            "m" | "multiline" => re_m = true,
            "s" | "dotall" => re_s = true,
            "cidr" => set_kind(&mut kind, Kind::Cidr)?,
            "exists" => set_kind(&mut kind, Kind::Exists)?,
            "gt" => set_kind(&mut kind, Kind::Cmp(CmpOp::Gt))?,
            "gte" => set_kind(&mut kind, Kind::Cmp(CmpOp::Gte))?,
            "lt" => set_kind(&mut kind, Kind::Cmp(CmpOp::Lt))?,
            "lte" => set_kind(&mut kind, Kind::Cmp(CmpOp::Lte))?,
            "fieldref" => set_kind(&mut kind, Kind::FieldRef)?,
            "" => return Err("empty modifier".into()),
            other => return Err(format!("unsupported modifier `{other}`")),
        }
    }
    if (re_i || re_m || re_s) && kind != Kind::Re {
        return Err("regular expression flags (`i`, `m`, `s`) require `re`".into());
    }
    match kind {
        Kind::Str => {}
        Kind::FieldRef => {
            if let Some((_, m)) = transforms.iter().find(|(t, _)| {
                !matches!(
                    t,
                    Transform::Contains | Transform::Startswith | Transform::Endswith
                )
            }) {
                return Err(format!("modifier `{m}` cannot be combined with `fieldref`"));
            }
        }
        _ => {
            if let Some((_, m)) = transforms.first() {
                let k = mods
                    .iter()
                    .find(|x| matches!(**x, "re" | "cidr" | "exists" | "gt" | "gte" | "lt" | "lte"))
                    .unwrap_or(&"?");
                return Err(format!("modifier `{m}` cannot be combined with `{k}`"));
            }
            if cased {
                return Err("modifier `cased` only applies to string values".into());
            }
        }
    }
    let keyword = field.is_empty();
    if keyword && !matches!(kind, Kind::Str | Kind::Re) {
        return Err("keyword search (no field name) supports only string and `re` values".into());
    }
    // A keyword is a substring search unless the rule says otherwise.
    if keyword
        && kind == Kind::Str
        && !transforms.iter().any(|(t, _)| {
            matches!(
                t,
                Transform::Contains | Transform::Startswith | Transform::Endswith
            )
        })
    {
        transforms.push((Transform::Contains, "contains"));
    }

    let items: Vec<&Node> = match value {
        Node::Seq(items) => items.iter().collect(),
        n => vec![n],
    };
    if items.is_empty() {
        return Err("empty value list".into());
    }
    if items.len() > MAX_VALUES {
        return Err(format!("more than {MAX_VALUES} values"));
    }
    let field_name = (!keyword).then(|| Box::<str>::from(field));

    let mut null_ok = false;
    let mut groups: Vec<Vec<Pred>> = Vec::with_capacity(items.len());
    let mut total = 0usize;
    for item in &items {
        if matches!(item, Node::Seq(_) | Node::Map(_)) {
            return Err(format!(
                "a value is {}, expected a scalar",
                item.type_name()
            ));
        }
        if item.is_null() {
            if kind != Kind::Str || !transforms.is_empty() || keyword {
                return Err("`null` cannot be used with modifiers".into());
            }
            if items.len() == 1 {
                return Ok(Term {
                    field: field_name,
                    sym: NO_SYM,
                    kind: TermKind::Null,
                    negate,
                });
            }
            if all {
                return Err("`null` cannot be combined with `all`".into());
            }
            null_ok = true;
            continue;
        }
        let text = item.scalar_text().unwrap_or("");
        let group = match kind {
            Kind::Str => compile_str_value(text, &transforms, cased)?,
            Kind::Re => {
                let re = regex::RegexBuilder::new(text)
                    .case_insensitive(re_i)
                    .multi_line(re_m)
                    .dot_matches_new_line(re_s)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(2 * REGEX_SIZE_LIMIT)
                    .nest_limit(100)
                    .build()
                    .map_err(|e| {
                        let msg = e
                            .to_string()
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ");
                        format!("invalid regular expression `{text}`: {msg}")
                    })?;
                let lits = crate::value::regex_required_literals(text, re_i, re_m, re_s);
                vec![Pred::Re(re, lits.into_iter().map(Into::into).collect())]
            }
            Kind::Cidr => vec![Pred::Cidr(Cidr::parse(text)?)],
            Kind::Exists => {
                if items.len() != 1 {
                    return Err("`exists` takes one boolean".into());
                }
                let b = match (item, text) {
                    (
                        Node::Scalar(ScalarKind::Bool | ScalarKind::Str, _),
                        "true" | "True" | "TRUE",
                    ) => true,
                    (
                        Node::Scalar(ScalarKind::Bool | ScalarKind::Str, _),
                        "false" | "False" | "FALSE",
                    ) => false,
                    _ => return Err(format!("`exists` needs `true` or `false`, not `{text}`")),
                };
                return Ok(Term {
                    field: field_name,
                    sym: NO_SYM,
                    kind: TermKind::Exists(b),
                    negate,
                });
            }
            Kind::Cmp(op) => {
                let v: f64 = text
                    .trim()
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite())
                    .ok_or_else(|| format!("numeric comparison needs a number, not `{text}`"))?;
                vec![Pred::Cmp(op, v)]
            }
            Kind::FieldRef => {
                if text.is_empty() || SigmaStr::parse(text).has_wildcards() {
                    return Err(format!("`fieldref` needs a field name, not `{text}`"));
                }
                let has = |x: Transform| transforms.iter().any(|(t, _)| *t == x);
                let mode = match (
                    has(Transform::Contains),
                    has(Transform::Startswith),
                    has(Transform::Endswith),
                ) {
                    (true, _, _) | (false, true, true) => RefMode::Contains,
                    (false, true, false) => RefMode::Prefix,
                    (false, false, true) => RefMode::Suffix,
                    (false, false, false) => RefMode::Eq,
                };
                vec![Pred::FieldRef(NO_SYM, text.into(), mode)]
            }
        };
        total += group.len();
        if total > MAX_VALUES {
            return Err(format!(
                "more than {MAX_VALUES} values after modifier expansion"
            ));
        }
        groups.push(group);
    }
    let kind = if all {
        TermKind::All {
            groups: groups.into_iter().map(optimize).collect(),
            cased,
        }
    } else {
        TermKind::Any {
            preds: optimize(groups.into_iter().flatten().collect()),
            cased,
            null_ok,
        }
    };
    Ok(Term {
        field: field_name,
        sym: NO_SYM,
        kind,
        negate,
    })
}

/// Applies the string transforms of one rule value; returns its alternatives.
fn compile_str_value(
    text: &str,
    transforms: &[(Transform, &str)],
    cased: bool,
) -> Result<Vec<Pred>, String> {
    let mut stages = vec![Stage::Str(SigmaStr::parse(text))];
    for &(t, name) in transforms {
        let mut next = Vec::with_capacity(stages.len());
        for st in stages {
            match (t, st) {
                (Transform::Contains, Stage::Str(s)) => next.push(Stage::Str(s.wrap_contains())),
                (Transform::Startswith, Stage::Str(s)) => {
                    next.push(Stage::Str(s.wrap_startswith()))
                }
                (Transform::Endswith, Stage::Str(s)) => next.push(Stage::Str(s.wrap_endswith())),
                (Transform::Windash, Stage::Str(s)) => {
                    next.extend(s.windash()?.into_iter().map(Stage::Str))
                }
                (Transform::Utf16Le | Transform::Utf16Be | Transform::Utf16, Stage::Str(s)) => {
                    let plain = s
                        .plain()
                        .ok_or_else(|| format!("`{name}` cannot encode wildcards"))?;
                    next.push(Stage::Bytes(utf16(
                        &plain,
                        t == Transform::Utf16Be,
                        t == Transform::Utf16,
                    )));
                }
                (Transform::Base64 | Transform::Base64Offset, st) => {
                    let bytes = match st {
                        Stage::Bytes(b) => b,
                        Stage::Str(s) => s
                            .plain()
                            .ok_or("base64 encoding of values with wildcards is not allowed")?
                            .into_bytes(),
                    };
                    if t == Transform::Base64 {
                        next.push(Stage::Str(SigmaStr::literal(&base64_plain(&bytes))));
                    } else {
                        next.extend(
                            base64_offsets(&bytes)
                                .iter()
                                .map(|e| Stage::Str(SigmaStr::literal(e))),
                        );
                    }
                }
                (_, Stage::Bytes(_)) => {
                    return Err(format!(
                        "modifier `{name}` cannot follow an encoding modifier (use base64/base64offset)"
                    ));
                }
            }
        }
        if next.len() > MAX_VALUES {
            return Err(format!(
                "more than {MAX_VALUES} values after modifier expansion"
            ));
        }
        stages = next;
    }
    stages
        .into_iter()
        .map(|st| match st {
            Stage::Str(s) => Ok(s.compile(cased)),
            Stage::Bytes(_) => {
                Err("`wide`/`utf16*` must be followed by `base64` or `base64offset`".to_string())
            }
        })
        .collect()
}

/// Merges many equality or substring alternatives into one set/automaton and orders the
/// alternatives cheapest first.
fn optimize(preds: Vec<Pred>) -> Vec<Pred> {
    let n_eq = preds.iter().filter(|p| matches!(p, Pred::Eq(_))).count();
    let n_contains = preds
        .iter()
        .filter(|p| matches!(p, Pred::Contains(_)))
        .count();
    let mut out: Vec<Pred> = Vec::with_capacity(preds.len());
    let mut eqs: HashSet<Box<str>, FxBuildHasher> = HashSet::default();
    let mut needles: Vec<Box<str>> = Vec::new();
    for p in preds {
        match p {
            Pred::Eq(s) if n_eq >= EQ_SET_MIN => {
                eqs.insert(s);
            }
            Pred::Contains(n) if n_contains >= AC_MIN => needles.push(n.text.clone()),
            p => out.push(p),
        }
    }
    if !eqs.is_empty() {
        out.push(Pred::EqSet(eqs));
    }
    if !needles.is_empty() {
        match AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(needles.iter().map(|s| s.as_bytes()))
        {
            Ok(ac) => out.push(Pred::ContainsAny(ac, needles.into_boxed_slice())),
            Err(_) => out.extend(
                needles
                    .iter()
                    .map(|n| Pred::Contains(Box::new(crate::value::Needle::new(n)))),
            ),
        }
    }
    out.sort_by_key(Pred::cost);
    out
}

// ---------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------

#[inline]
fn is_empty_eq(p: &Pred) -> bool {
    match p {
        Pred::Eq(s) => s.is_empty(),
        Pred::EqSet(set) => set.contains(""),
        _ => false,
    }
}

#[inline]
fn pred_on_value(p: &Pred, v: &FieldValue, cased: bool, ctx: &Ctx<'_>) -> bool {
    if let Pred::FieldRef(sym, _, mode) = p {
        return fieldref(*sym, *mode, v, cased, ctx);
    }
    v.items().iter().any(|t| p.matches_text(t, cased))
}

fn fieldref(sym: u32, mode: RefMode, v: &FieldValue, cased: bool, ctx: &Ctx<'_>) -> bool {
    let Some(other) = ctx.field(sym) else {
        return false;
    };
    v.items().iter().any(|a| {
        other.value.items().iter().any(|b| {
            let (a, b) = if cased {
                (a.text(), b.text())
            } else {
                (a.lower(), b.lower())
            };
            match mode {
                RefMode::Eq => a == b,
                RefMode::Prefix => a.starts_with(b),
                RefMode::Suffix => a.ends_with(b),
                RefMode::Contains => a.contains(b),
            }
        })
    })
}

impl Term {
    /// Evaluates the term on the record.
    #[inline]
    pub(crate) fn eval(&self, ctx: &Ctx<'_>) -> bool {
        let r = if self.field.is_none() {
            self.eval_keyword(ctx)
        } else {
            self.eval_value(ctx.field(self.sym).map(|f| &f.value), ctx)
        };
        r != self.negate
    }

    fn eval_value(&self, v: Option<&FieldValue>, ctx: &Ctx<'_>) -> bool {
        match &self.kind {
            TermKind::Null => v.is_none_or(FieldValue::is_null),
            TermKind::Exists(b) => v.is_some() == *b,
            TermKind::Any {
                preds,
                cased,
                null_ok,
            } => match v {
                None => *null_ok,
                Some(v) if v.is_null() => *null_ok || preds.iter().any(is_empty_eq),
                Some(v) => preds.iter().any(|p| pred_on_value(p, v, *cased, ctx)),
            },
            TermKind::All { groups, cased } => match v {
                None => false,
                Some(v) if v.is_null() => groups.iter().all(|g| g.iter().any(is_empty_eq)),
                Some(v) => groups
                    .iter()
                    .all(|g| g.iter().any(|p| pred_on_value(p, v, *cased, ctx))),
            },
        }
    }

    fn eval_keyword(&self, ctx: &Ctx<'_>) -> bool {
        let fields = &ctx.rec.fields;
        match &self.kind {
            TermKind::Any { preds, cased, .. } => fields.iter().any(|f| {
                preds
                    .iter()
                    .any(|p| pred_on_value(p, &f.value, *cased, ctx))
            }),
            TermKind::All { groups, cased } => groups.iter().all(|g| {
                fields
                    .iter()
                    .any(|f| g.iter().any(|p| pred_on_value(p, &f.value, *cased, ctx)))
            }),
            TermKind::Null | TermKind::Exists(_) => false,
        }
    }

    /// The first record field (name, value) that made a keyword term match.
    fn keyword_hit<'r>(&self, ctx: &Ctx<'r>) -> Option<&'r crate::record::Field> {
        let (preds, cased): (Vec<&Pred>, bool) = match &self.kind {
            TermKind::Any { preds, cased, .. } => (preds.iter().collect(), *cased),
            TermKind::All { groups, cased } => (groups.iter().flatten().collect(), *cased),
            _ => return None,
        };
        ctx.rec
            .fields
            .iter()
            .find(|f| preds.iter().any(|p| pred_on_value(p, &f.value, cased, ctx)))
    }

    /// Relative evaluation cost, for ordering AND terms.
    pub(crate) fn cost(&self) -> u32 {
        let c = match &self.kind {
            TermKind::Null | TermKind::Exists(_) => 1,
            TermKind::Any { preds, .. } => preds.iter().map(Pred::cost).sum::<u32>().min(200),
            TermKind::All { groups, .. } => groups
                .iter()
                .flatten()
                .map(Pred::cost)
                .sum::<u32>()
                .min(200),
        };
        if self.field.is_none() { c * 20 } else { c }
    }
}

impl Selection {
    #[inline]
    pub(crate) fn eval(&self, ctx: &Ctx<'_>) -> bool {
        self.alts.iter().any(|alt| alt.iter().all(|t| t.eval(ctx)))
    }

    pub(crate) fn cost(&self) -> u32 {
        self.alts
            .iter()
            .map(|a| a.first().map_or(0, Term::cost))
            .sum()
    }
}

/// Evaluates a condition with short-circuit.
pub(crate) fn eval_cond(c: &Cond, sels: &[Selection], ctx: &Ctx<'_>) -> bool {
    match c {
        Cond::Sel(i) => sels.get(*i as usize).is_some_and(|s| s.eval(ctx)),
        Cond::Not(x) => !eval_cond(x, sels, ctx),
        Cond::And(xs) => xs.iter().all(|x| eval_cond(x, sels, ctx)),
        Cond::Or(xs) => xs.iter().any(|x| eval_cond(x, sels, ctx)),
    }
}

/// Estimated cost of a condition.
pub(crate) fn cond_cost(c: &Cond, sels: &[Selection]) -> u32 {
    match c {
        Cond::Sel(i) => sels.get(*i as usize).map_or(0, Selection::cost),
        Cond::Not(x) => cond_cost(x, sels),
        Cond::And(xs) | Cond::Or(xs) => xs.iter().map(|x| cond_cost(x, sels)).sum(),
    }
}

/// Orders AND/OR children cheapest first and AND terms of each alternative likewise.
pub(crate) fn optimize_order(cond: &mut Cond, sels: &mut [Selection]) {
    for s in sels.iter_mut() {
        for alt in &mut s.alts {
            alt.sort_by_key(Term::cost);
        }
    }
    fn walk(c: &mut Cond, sels: &[Selection]) {
        match c {
            Cond::Sel(_) => {}
            Cond::Not(x) => walk(x, sels),
            Cond::And(xs) | Cond::Or(xs) => {
                for x in xs.iter_mut() {
                    walk(x, sels);
                }
                xs.sort_by_key(|x| cond_cost(x, sels));
            }
        }
    }
    walk(cond, sels);
}

/// The fields the positive, matching selections tested: (record field name, value text).
pub(crate) fn evidence(cond: &Cond, sels: &[Selection], ctx: &Ctx<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    collect(cond, sels, ctx, false, &mut out);
    out
}

fn collect(
    c: &Cond,
    sels: &[Selection],
    ctx: &Ctx<'_>,
    negated: bool,
    out: &mut Vec<(String, String)>,
) {
    match c {
        Cond::Not(x) => collect(x, sels, ctx, !negated, out),
        Cond::And(xs) | Cond::Or(xs) => {
            for x in xs {
                collect(x, sels, ctx, negated, out);
            }
        }
        Cond::Sel(i) => {
            if negated {
                return;
            }
            let Some(sel) = sels.get(*i as usize) else {
                return;
            };
            let Some(alt) = sel.alts.iter().find(|alt| alt.iter().all(|t| t.eval(ctx))) else {
                return;
            };
            for t in alt {
                let f = match &t.field {
                    None => t.keyword_hit(ctx),
                    Some(_) => ctx.field(t.sym),
                };
                if let Some(f) = f
                    && !out.iter().any(|(n, _)| *n == *f.name)
                {
                    out.push((f.name.to_string(), f.value.to_string()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(key: &str, yaml: &str) -> Result<Term, String> {
        let docs = crate::yaml::load_documents(yaml).unwrap();
        let mut parts = key.split('|');
        let field = parts.next().unwrap();
        let mods: Vec<&str> = parts.collect();
        compile_term(field, &mods, &docs[0])
    }

    #[test]
    fn modifier_errors_name_the_problem() {
        assert_eq!(
            term("a|expand", "x").unwrap_err(),
            "unsupported modifier `expand`"
        );
        assert_eq!(
            term("a|bogus", "x").unwrap_err(),
            "unsupported modifier `bogus`"
        );
        assert!(
            term("a|re", "'(unclosed'")
                .unwrap_err()
                .starts_with("invalid regular expression")
        );
        assert!(term("a|contains|re", "x").unwrap_err().contains("`re`"));
        assert!(
            term("a|re|contains", "x")
                .unwrap_err()
                .contains("cannot be combined")
        );
        assert!(term("a|i", "x").unwrap_err().contains("require `re`"));
        assert!(
            term("a|cidr", "10.0.0.0/99")
                .unwrap_err()
                .contains("prefix")
        );
        assert!(term("a|gt", "abc").unwrap_err().contains("number"));
        assert!(term("a|exists", "maybe").unwrap_err().contains("exists"));
        assert!(term("a|wide", "x").unwrap_err().contains("base64"));
        assert!(term("a|base64", "x*").unwrap_err().contains("wildcards"));
        assert!(
            term("a|fieldref", "'b*'")
                .unwrap_err()
                .contains("field name")
        );
        assert!(term("a", "[]").unwrap_err().contains("empty"));
        assert!(term("a", "{b: 1}").unwrap_err().contains("mapping"));
        assert!(
            term("a||contains", "x")
                .unwrap_err()
                .contains("empty modifier")
        );
        assert!(term("|exists", "true").unwrap_err().contains("keyword"));
    }

    #[test]
    fn many_values_are_merged() {
        let vals: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
        let yaml = format!("[{}]", vals.join(", "));
        let t = term("a", &yaml).unwrap();
        let TermKind::Any { preds, .. } = &t.kind else {
            panic!()
        };
        assert!(matches!(preds[0], Pred::EqSet(_)));
        let t = term("a|contains", &yaml).unwrap();
        let TermKind::Any { preds, .. } = &t.kind else {
            panic!()
        };
        assert!(matches!(preds[0], Pred::ContainsAny(..)));
    }

    #[test]
    fn regex_size_limit_rejects() {
        let err = term("a|re", "'(\\w{100}){100}'").unwrap_err();
        assert!(err.contains("invalid regular expression"), "{err}");
    }
}

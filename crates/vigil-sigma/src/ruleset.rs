//! [`RuleSet`]: loading, indexing and the matching hot path.
//!
//! Build (once): every rule is linked into one or more *variants* (its detection with field
//! names resolved to symbol ids, renamed per logsource source), and each variant is filed in
//! the buckets of the records it can describe: Windows `(channel, EventID)`, Windows
//! `channel`, any Windows record, or a non-EVTX `(product, category, service)`. Each large
//! bucket gets a *prefilter*: for every variant, a set of literal atoms (field equals /
//! starts with / ends with / contains a needle) at least one of which must hold for the rule to
//! match, indexed per field in a hash map (equality) and one Aho-Corasick automaton
//! (substrings).
//!
//! Matching (per record): resolve the record's fields to symbol slots, pick the record's
//! buckets, run each bucket's prefilter over the few fields it indexes, and evaluate only
//! the candidate variants (short-circuit, cheapest terms first). No YAML, no per-rule
//! allocation; the scratch buffers are thread-local.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aho_corasick::{AhoCorasick, MatchKind};

use crate::SigmaError;
use crate::condition::Cond;
use crate::detection::{self, Ctx, Detection, NO_FIELD, Selection, Term, TermKind, eval_cond};
use crate::fxhash::FxHashMap;
use crate::logsource::{self, Renames, WinTarget};
use crate::record::{FieldValue, Record};
use crate::rule::{ParsedRule, RejectKind, Rejected, RuleMeta, parse_rule};
use crate::value::{Pred, Tok};
use crate::yaml::{self, Node};

/// Largest rule file read.
pub const MAX_RULE_FILE_BYTES: u64 = 1024 * 1024;
/// Deepest directory recursion in [`RuleSet::load_dirs`].
const MAX_DIR_DEPTH: usize = 32;
/// Buckets with fewer variants than this are evaluated without a prefilter.
const PREFILTER_MIN: usize = 8;

/// A rule that matched a record.
#[derive(Debug, Clone)]
pub struct Match<'a> {
    /// The rule.
    pub rule: &'a RuleMeta,
    /// The fields (name, value as text) the matching, non-negated selections tested: the
    /// finding's evidence.
    pub fields: Vec<(String, String)>,
}

/// The result of [`RuleSet::load_dirs`].
#[derive(Debug)]
pub struct LoadReport {
    /// The rules that loaded.
    pub rules: RuleSet,
    /// Everything that did not, with reasons.
    pub rejected: Vec<Rejected>,
    /// Rule files (`*.yml`, `*.yaml`) read.
    pub files: usize,
}

/// A compiled detection bound to one logsource source.
#[derive(Debug)]
struct Variant {
    rule: u32,
    sels: Vec<Selection>,
    cond: Cond,
    /// Extra source conditions: the field's lowercase text is one of the values.
    require: Vec<(u32, Vec<Box<str>>)>,
}

#[derive(Debug, Default)]
struct SymbolTable {
    /// ASCII-lowercase name -> every exact spelling used by rules, with its symbol id.
    by_lower: FxHashMap<Box<str>, Vec<(Box<str>, u32)>>,
    count: u32,
}

impl SymbolTable {
    fn intern(&mut self, name: &str) -> u32 {
        let list = self
            .by_lower
            .entry(name.to_ascii_lowercase().into())
            .or_default();
        if let Some((_, id)) = list.iter().find(|(n, _)| &**n == name) {
            return *id;
        }
        let id = self.count;
        self.count += 1;
        list.push((name.into(), id));
        id
    }

    /// For each symbol, the index of the record field it reads (exact name first, then the
    /// first ASCII-case-insensitive match), or `NO_FIELD`.
    fn resolve(&self, rec: &Record, slots: &mut Vec<u32>) {
        slots.clear();
        slots.resize(self.count as usize, NO_FIELD);
        let mut buf = [0u8; 128];
        for (i, f) in rec.fields.iter().enumerate() {
            // Lowercase the name on the stack (long names are never rule fields' names
            // often enough to matter; they take the allocating path).
            let owned;
            let lname: &str = if f.name.len() <= buf.len() {
                let b = &mut buf[..f.name.len()];
                b.copy_from_slice(f.name.as_bytes());
                b.make_ascii_lowercase();
                match std::str::from_utf8(b) {
                    Ok(s) => s,
                    Err(_) => continue,
                }
            } else {
                owned = f.name.to_ascii_lowercase();
                &owned
            };
            let Some(list) = self.by_lower.get(lname) else {
                continue;
            };
            for (exact, sym) in list {
                let slot = &mut slots[*sym as usize];
                let exact_here = *f.name == **exact;
                if *slot == NO_FIELD || (exact_here && *rec.fields[*slot as usize].name != **exact)
                {
                    *slot = i as u32;
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtomKind {
    Eq,
    Prefix,
    Suffix,
    Contains,
}

#[derive(Debug, Clone)]
struct Atom {
    sym: u32,
    kind: AtomKind,
    needle: Box<str>,
}

/// Chooses prefilter atoms. An atom's weight estimates how often it holds on real data:
/// short needles hold often, and so do needles many rules of the bucket use (`.exe`,
/// `Microsoft Corporation`): rule authors test common values in filters and secondary terms.
struct AtomPicker {
    /// (symbol, needle) -> number of variants of the bucket whose terms use it.
    freq: FxHashMap<(u32, Box<str>), u32>,
}

impl AtomPicker {
    fn new(bucket: &[u32], variants: &[Variant]) -> AtomPicker {
        let mut freq: FxHashMap<(u32, Box<str>), u32> = FxHashMap::default();
        for &vid in bucket {
            let v = &variants[vid as usize];
            let mut seen: Vec<(u32, Box<str>)> = Vec::new();
            for sel in &v.sels {
                for t in sel.alts.iter().flatten() {
                    for option in term_options(t, true, &length_score) {
                        for a in option {
                            let key = (a.sym, a.needle);
                            if !seen.contains(&key) {
                                seen.push(key);
                            }
                        }
                    }
                }
            }
            for key in seen {
                *freq.entry(key).or_default() += 1;
            }
        }
        AtomPicker { freq }
    }

    fn weight(&self, a: &Atom) -> f64 {
        // Estimated hit rate: falls steeply with needle length; anchored and whole-value
        // atoms are rarer than substrings.
        let l = a.needle.chars().count().max(1) as f64;
        let mut w = 1.0 + 16.0 / l.powf(1.5);
        w *= match a.kind {
            AtomKind::Eq => 0.3,
            AtomKind::Prefix | AtomKind::Suffix => 0.7,
            AtomKind::Contains => 1.0,
        };
        // A bare file extension (`.exe`) or punctuation (` -`, `\\`) is in most values.
        let ext_like = a.needle.starts_with('.') && a.needle.len() <= 5;
        let punct = a.needle.chars().all(|c| !c.is_alphanumeric());
        if ext_like || punct {
            w *= 6.0;
        }
        let f = self
            .freq
            .get(&(a.sym, a.needle.clone()))
            .copied()
            .unwrap_or(1)
            .max(1) as f64;
        w * (1.0 + f.ln())
    }

    fn score(&self, atoms: &[Atom]) -> f64 {
        atoms.iter().map(|a| self.weight(a)).sum()
    }

    fn best(&self, options: impl Iterator<Item = Vec<Atom>>) -> Option<Vec<Atom>> {
        options.min_by(|a, b| self.score(a).total_cmp(&self.score(b)))
    }

    /// Clauses (each a set of atoms, at least one of which holds) that all hold whenever the
    /// condition is true; `None` when no literal is necessary.
    fn cond_clauses(&self, c: &Cond, sels: &[Selection]) -> Option<Vec<Vec<Atom>>> {
        let score = |a: &[Atom]| self.score(a);
        match c {
            Cond::Sel(i) => {
                let sel = sels.get(*i as usize)?;
                if let [alt] = sel.alts.as_slice() {
                    // An AND of terms: every term with a literal is a clause of its own.
                    let clauses: Vec<Vec<Atom>> = alt
                        .iter()
                        .filter_map(|t| self.best(term_options(t, false, &score).into_iter()))
                        .collect();
                    return (!clauses.is_empty()).then_some(clauses);
                }
                let mut out = Vec::new();
                for alt in &sel.alts {
                    out.extend(self.best(alt.iter().flat_map(|t| term_options(t, false, &score)))?);
                }
                Some(vec![out])
            }
            Cond::Not(_) => None,
            Cond::And(xs) => {
                let v: Vec<Vec<Atom>> = xs
                    .iter()
                    .filter_map(|x| self.cond_clauses(x, sels))
                    .flatten()
                    .collect();
                (!v.is_empty()).then_some(v)
            }
            Cond::Or(xs) => {
                let mut out = Vec::new();
                for x in xs {
                    let clauses = self.cond_clauses(x, sels)?;
                    out.extend(self.best(clauses.into_iter())?);
                }
                Some(vec![out])
            }
        }
    }

    /// The (at most two) most selective clauses of a variant.
    fn pick(&self, v: &Variant) -> Option<Vec<Vec<Atom>>> {
        let mut clauses = self.cond_clauses(&v.cond, &v.sels)?;
        clauses.sort_by(|a, b| self.score(a).total_cmp(&self.score(b)));
        clauses.truncate(2);
        Some(clauses)
    }
}

/// The ways one predicate on field `sym` can be covered by atoms (each option: a set of
/// atoms, one of which holds whenever the predicate does). Empty when it has no literal.
fn pred_options(p: &Pred, sym: u32, cased: bool) -> Vec<Vec<Atom>> {
    // Cased needles are lowercased and tested on the lowercase text: necessary, as long as
    // lowercasing is per character (true for ASCII; Greek final sigma is not).
    let ok = |s: &str| !s.is_empty() && (!cased || s.is_ascii());
    let atom = |kind, s: &str| Atom {
        sym,
        kind,
        needle: s.to_lowercase().into(),
    };
    match p {
        Pred::Eq(s) if !cased || s.is_ascii() => vec![vec![atom(AtomKind::Eq, s)]],
        Pred::Prefix(s) if ok(s) => vec![vec![atom(AtomKind::Prefix, s)]],
        Pred::Suffix(s) if ok(s) => vec![vec![atom(AtomKind::Suffix, s)]],
        Pred::Contains(n) if ok(&n.text) => vec![vec![atom(AtomKind::Contains, &n.text)]],
        Pred::EqSet(set) if set.iter().all(|s| !cased || s.is_ascii()) => {
            vec![set.iter().map(|s| atom(AtomKind::Eq, s)).collect()]
        }
        Pred::ContainsAny(_, needles) if needles.iter().all(|s| ok(s)) => {
            vec![
                needles
                    .iter()
                    .map(|s| atom(AtomKind::Contains, s))
                    .collect(),
            ]
        }
        Pred::Glob(toks) => {
            let mut out = Vec::new();
            if let Some(Tok::Lit(s)) = toks.first()
                && ok(s)
            {
                out.push(vec![atom(AtomKind::Prefix, s)]);
            }
            if let Some(Tok::Lit(s)) = toks.last()
                && ok(s)
            {
                out.push(vec![atom(AtomKind::Suffix, s)]);
            }
            for t in toks.iter() {
                if let Tok::Lit(s) = t
                    && ok(s)
                {
                    out.push(vec![atom(AtomKind::Contains, s)]);
                }
            }
            out
        }
        // Regex literals come from the pattern, not the case-insensitive flag: they are
        // lowercased ASCII and checked on the lowercase text, which is necessary either way.
        Pred::Re(_, lits) => lits
            .iter()
            .filter(|l| !l.is_empty())
            .map(|l| vec![atom(AtomKind::Contains, l)])
            .collect(),
        _ => Vec::new(),
    }
}

/// A score for a set of atoms (lower is more selective).
type Scorer<'a> = &'a dyn Fn(&[Atom]) -> f64;

/// Scores by needle length only (before frequencies are known).
fn length_score(atoms: &[Atom]) -> f64 {
    atoms
        .iter()
        .map(|a| 1.0 / (a.needle.len() as f64 + 1.0))
        .sum()
}

/// Covers an OR of predicates: each predicate contributes its best option (one option per
/// combination would be too many).
fn or_options(preds: &[Pred], sym: u32, cased: bool, score: Scorer<'_>) -> Option<Vec<Atom>> {
    let mut out = Vec::new();
    for p in preds {
        let best = pred_options(p, sym, cased)
            .into_iter()
            .min_by(|a, b| score(a).total_cmp(&score(b)))?;
        out.extend(best);
    }
    Some(out)
}

/// The ways a term can be covered. `any_polarity` also lists negated terms (for the
/// frequency count, not for coverage).
fn term_options(t: &Term, any_polarity: bool, score: Scorer<'_>) -> Vec<Vec<Atom>> {
    if (t.negate && !any_polarity) || t.field.is_none() {
        return Vec::new();
    }
    match &t.kind {
        TermKind::Any {
            preds,
            cased,
            null_ok,
        } => {
            if *null_ok && !any_polarity {
                return Vec::new();
            }
            if preds.len() == 1 {
                return pred_options(&preds[0], t.sym, *cased);
            }
            or_options(preds, t.sym, *cased, score)
                .into_iter()
                .collect()
        }
        // Every group must match: each group is an option on its own.
        TermKind::All { groups, cased } => groups
            .iter()
            .flat_map(|g| {
                if g.len() == 1 {
                    pred_options(&g[0], t.sym, *cased)
                } else {
                    or_options(g, t.sym, *cased, score).into_iter().collect()
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[derive(Debug, Default)]
struct PatternHits {
    contains: Vec<u32>,
    prefix: Vec<u32>,
    suffix: Vec<u32>,
}

#[derive(Debug)]
struct FieldFilter {
    sym: u32,
    eq: FxHashMap<Box<str>, Vec<u32>>,
    ac: Option<AhoCorasick>,
    pats: Vec<PatternHits>,
}

#[derive(Debug)]
struct Prefilter {
    /// Variants (bucket-local bits) with no atoms: always evaluated.
    always: Vec<u64>,
    /// Variants with a single clause (their second clause counts as satisfied).
    single: Vec<u64>,
    /// Postings hold `local << 1 | clause`.
    fields: Vec<FieldFilter>,
}

#[derive(Debug, Default)]
struct Bucket {
    variants: Vec<u32>,
    prefilter: Option<Prefilter>,
}

/// Sets a posting's bit: clause 0 in `c0`, clause 1 in `c1`.
#[inline]
fn post(c0: &mut [u64], c1: &mut [u64], posting: u32) {
    let local = posting >> 1;
    if posting & 1 == 0 {
        set_bit(c0, local);
    } else {
        set_bit(c1, local);
    }
}

#[inline]
fn set_bit(bits: &mut [u64], i: u32) {
    if let Some(w) = bits.get_mut((i / 64) as usize) {
        *w |= 1u64 << (i % 64);
    }
}

impl FieldFilter {
    fn mark(&self, v: &FieldValue, c0: &mut [u64], c1: &mut [u64], seen: &mut Vec<u64>) {
        if v.is_null() {
            if let Some(list) = self.eq.get("") {
                list.iter().for_each(|&p| post(c0, c1, p));
            }
            return;
        }
        if self.ac.is_some() {
            seen.clear();
            seen.resize(self.pats.len().div_ceil(64), 0);
        }
        for t in v.items() {
            let s = t.lower();
            if let Some(list) = self.eq.get(s) {
                list.iter().for_each(|&p| post(c0, c1, p));
            }
            let Some(ac) = &self.ac else {
                continue;
            };
            for m in ac.find_overlapping_iter(s) {
                let p = m.pattern().as_usize();
                let Some(hits) = self.pats.get(p) else {
                    continue;
                };
                let (w, b) = (p / 64, 1u64 << (p % 64));
                if seen[w] & b == 0 {
                    seen[w] |= b;
                    hits.contains.iter().for_each(|&p| post(c0, c1, p));
                }
                if m.start() == 0 {
                    hits.prefix.iter().for_each(|&p| post(c0, c1, p));
                }
                if m.end() == s.len() {
                    hits.suffix.iter().for_each(|&p| post(c0, c1, p));
                }
            }
        }
    }
}

impl Prefilter {
    fn build(bucket: &[u32], variants: &[Variant]) -> Prefilter {
        let words = bucket.len().div_ceil(64);
        let mut always = vec![0u64; words];
        let mut single = vec![0u64; words];
        // sym -> (eq map, pattern index map, patterns)
        struct Acc {
            eq: FxHashMap<Box<str>, Vec<u32>>,
            pat_index: FxHashMap<Box<str>, usize>,
            pats: Vec<(Box<str>, PatternHits)>,
        }
        let mut by_sym: FxHashMap<u32, Acc> = FxHashMap::default();
        let picker = AtomPicker::new(bucket, variants);
        for (local, &vid) in bucket.iter().enumerate() {
            let local = local as u32;
            let v = &variants[vid as usize];
            let Some(clauses) = picker.pick(v) else {
                set_bit(&mut always, local);
                continue;
            };
            if clauses.len() == 1 {
                set_bit(&mut single, local);
            }
            for (ci, clause) in clauses.into_iter().enumerate() {
                let posting = local << 1 | ci as u32;
                for a in clause {
                    let acc = by_sym.entry(a.sym).or_insert_with(|| Acc {
                        eq: FxHashMap::default(),
                        pat_index: FxHashMap::default(),
                        pats: Vec::new(),
                    });
                    if a.kind == AtomKind::Eq {
                        let list = acc.eq.entry(a.needle).or_default();
                        if list.last() != Some(&posting) {
                            list.push(posting);
                        }
                        continue;
                    }
                    let idx = *acc.pat_index.entry(a.needle.clone()).or_insert_with(|| {
                        acc.pats.push((a.needle.clone(), PatternHits::default()));
                        acc.pats.len() - 1
                    });
                    let hits = &mut acc.pats[idx].1;
                    let list = match a.kind {
                        AtomKind::Prefix => &mut hits.prefix,
                        AtomKind::Suffix => &mut hits.suffix,
                        _ => &mut hits.contains,
                    };
                    if list.last() != Some(&posting) {
                        list.push(posting);
                    }
                }
            }
        }
        let mut fields: Vec<FieldFilter> = by_sym
            .into_iter()
            .map(|(sym, acc)| {
                let (needles, pats): (Vec<Box<str>>, Vec<PatternHits>) =
                    acc.pats.into_iter().unzip();
                let ac = if needles.is_empty() {
                    None
                } else {
                    AhoCorasick::builder()
                        .match_kind(MatchKind::Standard)
                        .build(needles.iter().map(|n| n.as_bytes()))
                        .ok()
                };
                // Without an automaton the substring atoms cannot be checked: their
                // variants become unconditional (correct, only slower).
                if ac.is_none() {
                    for h in &pats {
                        for &l in h.contains.iter().chain(&h.prefix).chain(&h.suffix) {
                            set_bit(&mut always, l >> 1);
                        }
                    }
                }
                FieldFilter {
                    sym,
                    eq: acc.eq,
                    ac,
                    pats,
                }
            })
            .collect();
        fields.sort_by_key(|f| f.sym);
        Prefilter {
            always,
            single,
            fields,
        }
    }
}

#[derive(Debug, Default)]
struct ChannelIndex {
    any: Bucket,
    by_eid: FxHashMap<u32, Bucket>,
}

type GenericIndex = FxHashMap<Box<str>, FxHashMap<Box<str>, FxHashMap<Box<str>, Bucket>>>;

/// A compiled, indexed set of Sigma rules. Immutable after build; `Send + Sync`.
#[derive(Debug)]
pub struct RuleSet {
    metas: Vec<RuleMeta>,
    variants: Vec<Variant>,
    symbols: SymbolTable,
    /// Lowercase channel -> buckets.
    windows: FxHashMap<Box<str>, ChannelIndex>,
    windows_any: Bucket,
    /// product -> category -> service (lowercase, "" for unset) -> bucket.
    generic: GenericIndex,
}

#[derive(Default)]
struct BucketScratch {
    cand: Vec<u64>,
    cand2: Vec<u64>,
    seen: Vec<u64>,
    /// Evaluate every variant, ignoring prefilters (tests check the prefilter against it).
    brute: bool,
}

#[derive(Default)]
struct Scratch {
    slots: Vec<u32>,
    bucket: BucketScratch,
    hits: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Variants of one channel before indexing: any EventID, and by EventID.
type ChannelLists = (Vec<u32>, HashMap<u32, Vec<u32>>);

/// Rules grouped before the indexes are built.
#[derive(Default)]
struct Builder {
    metas: Vec<RuleMeta>,
    variants: Vec<Variant>,
    symbols: SymbolTable,
    windows: HashMap<String, ChannelLists>,
    windows_any: Vec<u32>,
    generic: HashMap<(String, String, String), Vec<u32>>,
}

fn lower_or_empty(s: &Option<String>) -> String {
    s.as_deref()
        .map(str::to_ascii_lowercase)
        .unwrap_or_default()
}

impl Builder {
    fn link(
        &mut self,
        rule: u32,
        det: &Detection,
        renames: Option<&Renames>,
        require: &[(String, Vec<String>)],
    ) -> u32 {
        let mut sels = det.sels.clone();
        let rename = |f: &str| renames.map_or(f, |r| r.apply(f)).to_string();
        for s in &mut sels {
            for alt in &mut s.alts {
                for t in alt.iter_mut() {
                    if let Some(f) = &t.field {
                        let name = rename(f);
                        t.sym = self.symbols.intern(&name);
                        t.field = Some(name.into());
                    }
                    let preds: Vec<&mut Pred> = match &mut t.kind {
                        TermKind::Any { preds, .. } => preds.iter_mut().collect(),
                        TermKind::All { groups, .. } => groups.iter_mut().flatten().collect(),
                        _ => Vec::new(),
                    };
                    for p in preds {
                        if let Pred::FieldRef(sym, name, _) = p {
                            let renamed = rename(name);
                            *sym = self.symbols.intern(&renamed);
                            *name = renamed.into();
                        }
                    }
                }
            }
        }
        let mut cond = det.cond.clone();
        detection::optimize_order(&mut cond, &mut sels);
        let require = require
            .iter()
            .map(|(f, vals)| {
                (
                    self.symbols.intern(f),
                    vals.iter().map(|v| v.to_lowercase().into()).collect(),
                )
            })
            .collect();
        self.variants.push(Variant {
            rule,
            sels,
            cond,
            require,
        });
        (self.variants.len() - 1) as u32
    }

    fn add(&mut self, parsed: ParsedRule) {
        let rule = self.metas.len() as u32;
        let ParsedRule { meta, detection } = parsed;
        let base = self.link(rule, &detection, None, &[]);
        let ls = &meta.logsource;
        self.generic
            .entry((
                lower_or_empty(&ls.product),
                lower_or_empty(&ls.category),
                lower_or_empty(&ls.service),
            ))
            .or_default()
            .push(base);
        match logsource::windows().target(ls) {
            None => {}
            Some(WinTarget::AnyWindows) => self.windows_any.push(base),
            Some(WinTarget::Sources(sources)) => {
                for src in sources {
                    let vid = if src.renames.is_none() && src.require.is_empty() {
                        base
                    } else {
                        self.link(rule, &detection, src.renames.as_deref(), &src.require)
                    };
                    for ch in &src.channels {
                        let entry = self.windows.entry(ch.clone()).or_default();
                        match &src.event_ids {
                            None => entry.0.push(vid),
                            Some(ids) => {
                                for id in ids {
                                    entry.1.entry(*id).or_default().push(vid);
                                }
                            }
                        }
                    }
                }
            }
        }
        self.metas.push(meta);
    }

    fn bucket(&self, variants: Vec<u32>) -> Bucket {
        let prefilter =
            (variants.len() >= PREFILTER_MIN).then(|| Prefilter::build(&variants, &self.variants));
        Bucket {
            variants,
            prefilter,
        }
    }

    fn build(mut self) -> RuleSet {
        let windows_raw = std::mem::take(&mut self.windows);
        let mut windows = FxHashMap::default();
        for (ch, (any, by_eid)) in windows_raw {
            let by_eid = by_eid
                .into_iter()
                .map(|(id, v)| (id, self.bucket(v)))
                .collect();
            windows.insert(
                ch.into_boxed_str(),
                ChannelIndex {
                    any: self.bucket(any),
                    by_eid,
                },
            );
        }
        let any = std::mem::take(&mut self.windows_any);
        let windows_any = self.bucket(any);
        let mut generic: GenericIndex = FxHashMap::default();
        for ((p, c, s), v) in std::mem::take(&mut self.generic) {
            let b = self.bucket(v);
            generic
                .entry(p.into())
                .or_default()
                .entry(c.into())
                .or_default()
                .insert(s.into(), b);
        }
        RuleSet {
            metas: self.metas,
            variants: self.variants,
            symbols: self.symbols,
            windows,
            windows_any,
            generic,
        }
    }
}

/// Parses one file's text into rules and rejections.
fn parse_file(text: &str, path: &Path) -> (Vec<ParsedRule>, Vec<Rejected>) {
    let docs = match yaml::load_documents(text) {
        Ok(d) => d,
        Err(reason) => {
            return (
                Vec::new(),
                vec![Rejected {
                    path: path.to_path_buf(),
                    id: None,
                    title: None,
                    reason,
                    kind: RejectKind::Yaml,
                }],
            );
        }
    };
    let docs: Vec<Node> = docs.into_iter().filter(|d| !d.is_null()).collect();
    let mut rules = Vec::new();
    let mut rejected = Vec::new();
    if docs.is_empty() {
        rejected.push(Rejected {
            path: path.to_path_buf(),
            id: None,
            title: None,
            reason: "the file holds no YAML document".into(),
            kind: RejectKind::Schema,
        });
        return (rules, rejected);
    }
    let collection = docs.iter().any(|d| d.get("action").is_some());
    for doc in &docs {
        if collection {
            rejected.push(Rejected {
                path: path.to_path_buf(),
                id: doc.get("id").and_then(Node::as_str).map(String::from),
                title: doc.get("title").and_then(Node::as_str).map(String::from),
                reason: "multi-document rule collections (`action: global/repeat/reset`) are unsupported".into(),
                kind: RejectKind::Unsupported,
            });
            continue;
        }
        match parse_rule(doc, path) {
            Ok(r) => rules.push(r),
            Err(r) => rejected.push(r),
        }
    }
    (rules, rejected)
}

fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>, rejected: &mut Vec<Rejected>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            rejected.push(Rejected {
                path: dir.to_path_buf(),
                id: None,
                title: None,
                reason: format!("cannot read directory: {e}"),
                kind: RejectKind::File,
            });
            return;
        }
    };
    let mut paths: Vec<(PathBuf, bool)> = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        // Directory symlinks are not followed (loops); file symlinks are.
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        paths.push((path, is_dir));
    }
    paths.sort();
    for (path, is_dir) in paths {
        if is_dir {
            if depth >= MAX_DIR_DEPTH {
                rejected.push(Rejected {
                    path,
                    id: None,
                    title: None,
                    reason: format!("directory nested deeper than {MAX_DIR_DEPTH} levels"),
                    kind: RejectKind::File,
                });
            } else {
                walk(&path, depth + 1, files, rejected);
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"))
        {
            files.push(path);
        }
    }
}

fn read_rule_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read file: {e}"))?;
    if meta.len() > MAX_RULE_FILE_BYTES {
        return Err(format!(
            "file is {} bytes, larger than the {MAX_RULE_FILE_BYTES}-byte limit",
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read file: {e}"))?;
    if bytes.len() as u64 > MAX_RULE_FILE_BYTES {
        return Err(format!(
            "file is larger than the {MAX_RULE_FILE_BYTES}-byte limit"
        ));
    }
    String::from_utf8(bytes).map_err(|_| "file is not valid UTF-8".to_string())
}

/// Rejects rules whose id an earlier rule already has.
fn dedupe(
    rules: Vec<ParsedRule>,
    seen: &mut HashMap<String, PathBuf>,
    rejected: &mut Vec<Rejected>,
) -> Vec<ParsedRule> {
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        if let Some(first) = seen.get(&r.meta.id) {
            rejected.push(Rejected {
                path: r.meta.path.clone(),
                id: Some(r.meta.id.clone()),
                title: Some(r.meta.title.clone()),
                reason: format!(
                    "duplicate rule id `{}` (already loaded from {})",
                    r.meta.id,
                    first.display()
                ),
                kind: RejectKind::DuplicateId,
            });
            continue;
        }
        seen.insert(r.meta.id.clone(), r.meta.path.clone());
        out.push(r);
    }
    out
}

impl RuleSet {
    /// Loads every `*.yml`/`*.yaml` file under the directories (recursively, in path order).
    /// Per-file and per-rule problems become [`Rejected`] entries, never errors or panics;
    /// a later rule with an already loaded id is rejected. Errors only when a directory
    /// itself cannot be read.
    pub fn load_dirs(dirs: &[impl AsRef<Path>]) -> Result<LoadReport, SigmaError> {
        let mut files = Vec::new();
        let mut rejected = Vec::new();
        for d in dirs {
            let d = d.as_ref();
            let meta = std::fs::metadata(d).map_err(|source| SigmaError::ReadDir {
                path: d.to_path_buf(),
                source,
            })?;
            if !meta.is_dir() {
                return Err(SigmaError::NotADirectory(d.to_path_buf()));
            }
            walk(d, 0, &mut files, &mut rejected);
        }
        let mut builder = Builder::default();
        let mut seen = HashMap::new();
        for path in &files {
            let text = match read_rule_file(path) {
                Ok(t) => t,
                Err(reason) => {
                    rejected.push(Rejected {
                        path: path.clone(),
                        id: None,
                        title: None,
                        reason,
                        kind: RejectKind::File,
                    });
                    continue;
                }
            };
            let (rules, rej) = parse_file(&text, path);
            rejected.extend(rej);
            for r in dedupe(rules, &mut seen, &mut rejected) {
                builder.add(r);
            }
        }
        for r in &rejected {
            tracing::debug!(path = %r.path.display(), id = ?r.id, reason = %r.reason, "sigma rule rejected");
        }
        let rules = builder.build();
        tracing::info!(
            files = files.len(),
            loaded = rules.len(),
            rejected = rejected.len(),
            "sigma rules loaded"
        );
        Ok(LoadReport {
            rules,
            rejected,
            files: files.len(),
        })
    }

    /// Compiles the rules of one YAML text (one rule per document). Any rejected document
    /// fails the whole text, with every reason.
    pub fn from_yaml(text: &str, path: &Path) -> Result<RuleSet, Vec<Rejected>> {
        let (rules, mut rejected) = parse_file(text, path);
        let rules = dedupe(rules, &mut HashMap::new(), &mut rejected);
        if !rejected.is_empty() {
            return Err(rejected);
        }
        let mut b = Builder::default();
        for r in rules {
            b.add(r);
        }
        Ok(b.build())
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.metas.len()
    }

    /// Whether the set has no rule.
    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    /// The rules' metadata, in load order.
    pub fn rules(&self) -> impl Iterator<Item = &RuleMeta> {
        self.metas.iter()
    }

    /// The rules that match the record, in load order, each once.
    pub fn matches(&self, record: &Record) -> Vec<Match<'_>> {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => self.matches_with(record, &mut s),
            Err(_) => self.matches_with(record, &mut Scratch::default()),
        })
    }

    /// Like [`RuleSet::matches`] without prefilters: every variant of the record's buckets.
    #[cfg(test)]
    fn matches_brute(&self, record: &Record) -> Vec<Match<'_>> {
        let mut s = Scratch::default();
        s.bucket.brute = true;
        self.matches_with(record, &mut s)
    }

    fn matches_with(&self, record: &Record, scratch: &mut Scratch) -> Vec<Match<'_>> {
        let Scratch {
            slots,
            bucket: bs,
            hits,
        } = scratch;
        self.symbols.resolve(record, slots);
        let ctx = Ctx { rec: record, slots };
        hits.clear();
        let channel = record
            .get("Channel")
            .and_then(|v| v.items().first())
            .map(|t| t.lower());
        if let Some(channel) = channel {
            if let Some(ci) = self.windows.get(channel) {
                let eid = record
                    .get("EventID")
                    .and_then(|v| v.items().first())
                    .and_then(|t| t.text().trim().parse::<u32>().ok());
                if let Some(b) = eid.and_then(|e| ci.by_eid.get(&e)) {
                    self.run_bucket(b, &ctx, bs, hits);
                }
                self.run_bucket(&ci.any, &ctx, bs, hits);
            }
            self.run_bucket(&self.windows_any, &ctx, bs, hits);
            // Rules with an empty logsource describe every record.
            if let Some(b) = self.generic_bucket("", "", "") {
                self.run_bucket(b, &ctx, bs, hits);
            }
        } else {
            if record.get("Provider_Name").is_some() {
                self.run_bucket(&self.windows_any, &ctx, bs, hits);
            }
            // Non-EVTX records: their own product/category/service fields (a field may hold
            // several values, e.g. a registry change is registry_set and registry_event).
            let attr = |name: &str| -> Vec<&str> {
                let mut v: Vec<&str> = record
                    .get(name)
                    .map(|v| {
                        v.items()
                            .iter()
                            .map(|t| t.lower())
                            .filter(|s| !s.is_empty())
                            .take(8)
                            .collect()
                    })
                    .unwrap_or_default();
                v.push("");
                v
            };
            let (ps, cs, ss) = (attr("product"), attr("category"), attr("service"));
            for p in &ps {
                for c in &cs {
                    for s in &ss {
                        if let Some(b) = self.generic_bucket(p, c, s) {
                            self.run_bucket(b, &ctx, bs, hits);
                        }
                    }
                }
            }
        }
        hits.sort_unstable_by_key(|&vid| self.variants[vid as usize].rule);
        hits.dedup_by_key(|vid| self.variants[*vid as usize].rule);
        hits.iter()
            .map(|&vid| {
                let v = &self.variants[vid as usize];
                Match {
                    rule: &self.metas[v.rule as usize],
                    fields: detection::evidence(&v.cond, &v.sels, &ctx),
                }
            })
            .collect()
    }

    fn generic_bucket(&self, p: &str, c: &str, s: &str) -> Option<&Bucket> {
        self.generic.get(p)?.get(c)?.get(s)
    }

    #[inline]
    fn try_variant(&self, vid: u32, ctx: &Ctx<'_>, hits: &mut Vec<u32>) {
        let v = &self.variants[vid as usize];
        for (sym, vals) in &v.require {
            let ok = ctx.field(*sym).is_some_and(|f| {
                f.value
                    .items()
                    .iter()
                    .any(|t| vals.iter().any(|v| **v == *t.lower()))
            });
            if !ok {
                return;
            }
        }
        if eval_cond(&v.cond, &v.sels, ctx) {
            hits.push(vid);
        }
    }

    fn run_bucket(
        &self,
        b: &Bucket,
        ctx: &Ctx<'_>,
        scratch: &mut BucketScratch,
        hits: &mut Vec<u32>,
    ) {
        let BucketScratch {
            cand,
            cand2,
            seen,
            brute,
        } = scratch;
        let Some(pf) = b.prefilter.as_ref().filter(|_| !*brute) else {
            for &vid in &b.variants {
                self.try_variant(vid, ctx, hits);
            }
            return;
        };
        cand.clear();
        cand.resize(pf.always.len(), 0);
        cand2.clear();
        cand2.resize(pf.always.len(), 0);
        for ff in &pf.fields {
            if let Some(f) = ctx.field(ff.sym) {
                ff.mark(&f.value, cand, cand2, seen);
            }
        }
        for (i, w) in cand.iter_mut().enumerate() {
            *w = pf.always[i] | (*w & (cand2[i] | pf.single[i]));
        }
        for (w, &bits) in cand.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let local = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(&vid) = b.variants.get(local) {
                    self.try_variant(vid, ctx, hits);
                }
            }
        }
    }

    /// Statistics about the compiled index, for benchmarks and diagnostics.
    pub fn stats(&self) -> RuleSetStats {
        let mut buckets = 0;
        let mut prefiltered = 0;
        let mut unconditional = 0;
        let mut count = |b: &Bucket| {
            buckets += 1;
            if let Some(pf) = &b.prefilter {
                prefiltered += b.variants.len();
                unconditional += pf
                    .always
                    .iter()
                    .map(|w| w.count_ones() as usize)
                    .sum::<usize>();
            }
        };
        for ci in self.windows.values() {
            count(&ci.any);
            ci.by_eid.values().for_each(&mut count);
        }
        count(&self.windows_any);
        for m in self.generic.values() {
            for m in m.values() {
                m.values().for_each(&mut count);
            }
        }
        RuleSetStats {
            rules: self.metas.len(),
            variants: self.variants.len(),
            symbols: self.symbols.count as usize,
            buckets,
            prefiltered_variants: prefiltered,
            unconditional_variants: unconditional,
        }
    }
}

/// Sizes of a [`RuleSet`]'s index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleSetStats {
    /// Rules.
    pub rules: usize,
    /// Compiled variants (a rule has one per logsource mapping with its own field names).
    pub variants: usize,
    /// Distinct field names.
    pub symbols: usize,
    /// Index buckets.
    pub buckets: usize,
    /// Variant entries in buckets that have a prefilter.
    pub prefiltered_variants: usize,
    /// Of those, entries the prefilter cannot skip (no literal atoms: regex-only, negation-only,
    /// keyword rules).
    pub unconditional_variants: usize,
}

// The rule set is shared across threads by the server and the CLI.
const _: () = {
    const fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<RuleSet>();
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The prefilter must never drop a match: compare with brute-force evaluation on the
    /// regression records and on records mixing their field values.
    #[test]
    fn prefilter_never_drops_a_match() {
        let Some(data) = std::env::var_os("VIGIL_SHARED_DATA") else {
            assert!(
                std::env::var_os("VIGIL_REQUIRE_DATA").is_none(),
                "VIGIL_REQUIRE_DATA is set but VIGIL_SHARED_DATA is not"
            );
            eprintln!("skipping: set VIGIL_SHARED_DATA to compare prefilter and brute force");
            return;
        };
        let sigma = PathBuf::from(data).join("sigma");
        let dirs =
            ["rules", "rules-emerging-threats", "rules-threat-hunting"].map(|d| sigma.join(d));
        let rules = RuleSet::load_dirs(&dirs).unwrap().rules;
        let mut files = Vec::new();
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "json") {
                    out.push(p);
                }
            }
        }
        walk(&sigma.join("regression_data"), &mut files);
        files.sort();
        let mut records = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            for v in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>() {
                records.push(Record::from_evtx_json(&v.unwrap()));
            }
        }
        // Mixed records: one record's frame with another's values for each field name.
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as usize
        };
        let base = records.len();
        for _ in 0..600 {
            let mut r = records[next() % base].clone();
            for f in r.fields.iter_mut() {
                if next() % 2 == 0 {
                    let donor = &records[next() % base];
                    if let Some(v) = donor.get(&f.name) {
                        f.value = v.clone();
                    }
                }
            }
            records.push(r);
        }
        let mut total = 0;
        for r in &records {
            let fast: Vec<&str> = rules
                .matches(r)
                .iter()
                .map(|m| m.rule.id.as_str())
                .collect();
            let slow: Vec<&str> = rules
                .matches_brute(r)
                .iter()
                .map(|m| m.rule.id.as_str())
                .collect();
            assert_eq!(fast, slow, "{r:?}");
            total += fast.len();
        }
        assert!(total > 0);
    }
}

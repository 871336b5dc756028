//! Markdown to HTML that is safe to put into a page, for triage reports in the console.
//!
//! A report quotes attacker-controlled text (event content, tool results). The renderer
//! therefore escapes every piece of raw HTML as text, drops images (a tracking pixel is an
//! exfiltration channel), and keeps only links to `http`, `https`, `mailto`, same-page
//! anchors and relative paths, rendering any other link (`javascript:`, `data:`, …) as its
//! text. The console also serves a Content-Security-Policy without inline scripts, so a
//! mistake here does not become script execution.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

/// Renders `markdown` to HTML with raw HTML escaped, images dropped and unsafe links
/// unlinked.
pub fn to_safe_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut dropped_links = 0usize;
    let mut in_image = 0usize;
    let events = Parser::new_ext(markdown, options).filter_map(|event| match event {
        Event::Html(html) | Event::InlineHtml(html) => Some(Event::Text(html)),
        Event::Start(Tag::Image { .. }) => {
            in_image += 1;
            None
        }
        Event::End(TagEnd::Image) => {
            in_image = in_image.saturating_sub(1);
            None
        }
        // An image's alt text stays, as text.
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            if safe_url(&dest_url) && in_image == 0 {
                Some(Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                }))
            } else {
                dropped_links += 1;
                None
            }
        }
        Event::End(TagEnd::Link) => {
            if dropped_links > 0 {
                dropped_links -= 1;
                None
            } else {
                Some(Event::End(TagEnd::Link))
            }
        }
        other => Some(other),
    });
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

/// Whether a link target is harmless to follow.
fn safe_url(url: &CowStr<'_>) -> bool {
    let u = url.trim();
    let lower = u.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:")
    {
        return true;
    }
    // Anything else with a scheme (`javascript:`, `data:`, `vbscript:`) is refused; a
    // relative path or an anchor has no `:` before its first `/`, `?` or `#`.
    let head = u.split(['/', '?', '#']).next().unwrap_or("");
    !head.contains(':') && !u.starts_with("//") && !u.contains('\\')
}

#[cfg(test)]
mod tests {
    use super::to_safe_html;

    #[test]
    fn raw_html_is_escaped_as_text() {
        let html = to_safe_html("hello <script>alert(1)</script>\n\n<img src=x onerror=alert(1)>");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
    }

    #[test]
    fn code_spans_and_fences_keep_hostile_text_inert() {
        let html = to_safe_html("`<b>x</b>`\n\n```\n</pre><script>x()</script>\n```\n");
        assert!(html.contains("<code>&lt;b&gt;x&lt;/b&gt;</code>"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("</pre><script"), "{html}");
    }

    #[test]
    fn unsafe_links_and_images_are_dropped() {
        let html = to_safe_html(
            "[a](javascript:alert(1)) [b](JaVaScRiPt:alert(1)) [c](data:text/html,x) \
             [d](https://attack.mitre.org/techniques/T1059/) [e](#timeline) [f](//evil.example/x) \
             ![pixel](https://evil.example/p.png)",
        );
        assert!(!html.to_ascii_lowercase().contains("javascript:"), "{html}");
        assert!(!html.contains("data:text"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("evil.example"), "{html}");
        assert!(html.contains(r#"<a href="https://attack.mitre.org/techniques/T1059/">d</a>"#));
        assert!(html.contains(r##"<a href="#timeline">e</a>"##), "{html}");
        // The text of a dropped link stays.
        assert!(html.contains('a') && html.contains("pixel"), "{html}");
    }

    #[test]
    fn tables_and_headings_render() {
        let html = to_safe_html("# Report\n\n| tool | result |\n|---|---|\n| `port_info` | ok |\n");
        assert!(html.contains("<h1>Report</h1>"), "{html}");
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("<code>port_info</code>"), "{html}");
    }
}

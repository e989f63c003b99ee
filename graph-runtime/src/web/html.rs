//! HTML building blocks: escaping, the page around every view, its stylesheet.

use std::fmt;

/// Text written into HTML (element content or a double- or single-quoted attribute value)
/// with `&`, `<`, `>`, `"` and `'` escaped: every value the console shows goes through it.
pub(super) struct Escape<'a>(pub &'a str);

impl fmt::Display for Escape<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// A message at the top of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Notice {
    /// What an action did.
    Done(String),
    /// Why a request did nothing.
    Error(String),
}

/// A whole page: `title`, the navigation (links relative to `base`, the folder of the
/// console's routes), an optional notice, then `body` (already HTML).
pub(super) fn page(base: &str, title: &str, notice: Option<&Notice>, body: &str) -> String {
    let notice = match notice {
        Some(Notice::Done(text)) => {
            format!(
                r#"<p class="notice done" role="status">{}</p>"#,
                Escape(text)
            )
        }
        Some(Notice::Error(text)) => {
            format!(
                r#"<p class="notice error" role="alert">{}</p>"#,
                Escape(text)
            )
        }
        None => String::new(),
    };
    let base = Escape(base);
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>{title} · graph-runtime console</title>
<style>{STYLE}</style>
</head>
<body>
<header><a class="brand" href="{base}sessions">graph-runtime console</a><nav><a href="{base}sessions">Sessions</a><a href="{base}stuck">Stuck</a><a href="{base}graphs">Graphs</a></nav></header>
<main>
{notice}{body}
</main>
</body>
</html>
"#,
        title = Escape(title),
    )
}

/// A status as a coloured badge (`<span class="status waiting">waiting</span>`).
pub(super) fn status(status: &str) -> String {
    format!(r#"<span class="status {s}">{s}</span>"#, s = Escape(status))
}

/// The console's stylesheet: plain CSS inlined in every page (no file to serve, nothing
/// fetched).
const STYLE: &str = r#"
:root { color-scheme: light; --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --bg: #f6f8fa;
  --accent: #0969da; --warn: #9a6700; --bad: #cf222e; --good: #1a7f37; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #fff; }
header { display: flex; gap: 24px; align-items: center; padding: 10px 24px; background: #24292f; }
header a { color: #f0f3f6; text-decoration: none; }
header .brand { font-weight: 600; }
header nav { display: flex; gap: 16px; }
main { padding: 16px 24px 48px; max-width: 1280px; }
h1 { font-size: 22px; margin: 8px 0 16px; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
h2 { font-size: 16px; margin: 24px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
a { color: var(--accent); }
code, pre, textarea, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 13px; }
pre.json { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 10px; overflow: auto; max-height: 420px; margin: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.wrap { word-break: break-word; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.summary dt { color: var(--muted); }
dl.summary dd { margin: 0; }
.columns { display: grid; grid-template-columns: minmax(280px, 1fr) minmax(280px, 1.2fr); gap: 24px; align-items: start; }
@media (max-width: 900px) { .columns { grid-template-columns: 1fr; } }
.status { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; border: 1px solid; }
.status.running { color: var(--accent); border-color: var(--accent); }
.status.waiting { color: var(--warn); border-color: #d4a72c; background: #fff8c5; }
.status.completed { color: var(--good); border-color: var(--good); background: #dafbe1; }
.status.failed { color: var(--bad); border-color: var(--bad); background: #ffebe9; }
.status.cancelled { color: var(--muted); border-color: var(--line); background: var(--bg); }
.notice { padding: 8px 12px; border-radius: 6px; border: 1px solid; }
.notice.done { color: var(--good); background: #dafbe1; border-color: #4ac26b; }
.notice.error { color: var(--bad); background: #ffebe9; border-color: #ff8182; white-space: pre-wrap; }
form.inline { display: inline; }
form.card, .card { border: 1px solid var(--line); border-radius: 6px; padding: 12px; margin: 0 0 12px; background: #fff; }
form.card h3, .card h3 { margin: 0 0 8px; font-size: 14px; }
label { display: block; margin: 6px 0 2px; color: var(--muted); }
input[type=text], input[type=number], textarea, select { width: 100%; padding: 5px 8px; border: 1px solid var(--line); border-radius: 6px; font: inherit; }
textarea { min-height: 64px; resize: vertical; }
.row { display: flex; gap: 12px; flex-wrap: wrap; }
.row > * { flex: 1 1 160px; }
button { margin-top: 8px; padding: 5px 14px; border-radius: 6px; border: 1px solid #1f883d; background: #1f883d; color: #fff; font: inherit; font-weight: 600; cursor: pointer; }
button.secondary { background: var(--bg); color: var(--ink); border-color: var(--line); }
button.danger { background: #fff; color: var(--bad); border-color: var(--bad); }
.filters { display: flex; gap: 12px; flex-wrap: wrap; align-items: end; margin-bottom: 12px; }
.filters > div { flex: 0 1 160px; }
.filters label { margin-top: 0; }
.muted { color: var(--muted); }
.hint { color: var(--muted); font-size: 12px; margin: 4px 0 0; }
.pager { margin-top: 12px; display: flex; gap: 16px; }
.graph-box { border: 1px solid var(--line); border-radius: 6px; padding: 8px; overflow: auto; background: #fff; }
svg.graph { display: block; margin: 0 auto; max-width: 100%; height: auto; }
svg.graph .node rect, svg.graph .node polygon { fill: #fff; stroke: #57606a; stroke-width: 1.5; }
svg.graph .node.interrupt polygon { fill: #fff8c5; stroke: #9a6700; }
svg.graph .node.terminal rect { fill: #eaeef2; }
svg.graph .node.current rect, svg.graph .node.current polygon { fill: #ffd33d; stroke: #bf3989; stroke-width: 3; }
svg.graph .node .inner { stroke: #57606a; fill: none; }
svg.graph .node text { font: 14px ui-monospace, "DejaVu Sans Mono", monospace; text-anchor: middle; fill: #1f2328; }
svg.graph .node.current text { font-weight: 700; }
svg.graph .edge { fill: none; stroke: #6e7781; stroke-width: 1.5; }
svg.graph .edge.thick { stroke-width: 3; }
svg.graph .edge.error { stroke: var(--bad); stroke-dasharray: 5 4; }
svg.graph .arrow { fill: #6e7781; }
svg.graph .edge-label rect { fill: #fff; stroke: none; }
svg.graph .edge-label text { font: 11px system-ui, sans-serif; text-anchor: middle; fill: #57606a; }
details summary { cursor: pointer; color: var(--muted); }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_special_character() {
        let text = Escape(r#"<script>alert("x" & 'y')</script> plain é"#).to_string();
        assert_eq!(
            text,
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt; plain é"
        );
        assert_eq!(Escape("").to_string(), "");
        assert_eq!(Escape("&&").to_string(), "&amp;&amp;");
    }

    #[test]
    fn a_page_escapes_its_title_and_notice() {
        let html = page(
            "./",
            "<b>",
            Some(&Notice::Error("<i>bad</i>".into())),
            "<p>body</p>",
        );
        assert!(html.contains("<title>&lt;b&gt; · "));
        assert!(html.contains("&lt;i&gt;bad&lt;/i&gt;"));
        assert!(html.contains("<p>body</p>"));
    }
}

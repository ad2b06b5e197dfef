"""The console's Markdown filters: formatting renders, everything that could run or load something does not."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from handoffs.web.filters import clock_utc, markdown, markdown_inline, register_filters, sanitize_html

SAFE_REL = 'rel="noopener noreferrer nofollow"'


def tags(html: str) -> set[str]:
    return {t.lower() for t in re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", html)}


def test_returns_markup_so_jinja_does_not_escape_it_again() -> None:
    assert isinstance(markdown("**x**"), Markup)
    assert isinstance(markdown_inline("**x**"), Markup)
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    register_filters(env)
    out = env.from_string("{{ text | markdown }}").render(text="**bold** <b>")
    assert out == "<p><strong>bold</strong> &lt;b&gt;</p>"


def test_bold_emphasis_code_and_line_breaks() -> None:
    html = markdown("**bold**, *em* and `code`\nnext line")
    assert html == "<p><strong>bold</strong>, <em>em</em> and <code>code</code><br>\nnext line</p>"
    assert "*" not in html


def test_lists_ordered_lists_quotes_and_code_blocks() -> None:
    html = markdown("- one\n- two\n\n3. three\n4. four\n\n> quoted\n\n```\nGet-Service | Stop-Service\n```")
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html
    assert '<ol start="3">\n<li>three</li>' in html
    assert "<blockquote>\n<p>quoted</p>\n</blockquote>" in html
    assert "<pre><code>Get-Service | Stop-Service\n</code></pre>" in html


def test_headings_sit_below_the_pages_own() -> None:
    assert markdown("# One\n## Two\n### Three") == "<h4>One</h4>\n<h5>Two</h5>\n<h6>Three</h6>"


def test_tables_without_inline_styles() -> None:
    html = markdown("| a | b |\n|:--|--:|\n| 1 | 2 |")
    assert {"table", "thead", "tbody", "tr", "th", "td"} <= tags(html)
    assert "style" not in html  # the CSP would refuse it (and log an error)


def test_links_are_clickable_with_a_safe_rel() -> None:
    html = markdown("[KB 123](https://support.example.com/kb/123?a=1&b=2) or <https://example.org>")
    assert (
        f'<a href="https://support.example.com/kb/123?a=1&amp;b=2" target="_blank" {SAFE_REL}>KB 123</a>'
        in html
    )
    assert f'<a href="https://example.org" target="_blank" {SAFE_REL}>https://example.org</a>' in html


def test_bare_urls_and_emails_become_links_but_file_names_do_not() -> None:
    html = markdown("See https://example.com/a_b_c, run install.sh, mail jane@example.com")
    assert f'<a href="https://example.com/a_b_c" target="_blank" {SAFE_REL}>' in html
    assert f'<a href="mailto:jane@example.com" target="_blank" {SAFE_REL}>' in html
    assert "install.sh" in html
    assert html.count("<a ") == 2


def test_plain_text_stays_text() -> None:
    assert markdown("Outlook shows 'Disconnected' & won't sync") == (
        "<p>Outlook shows 'Disconnected' &amp; won't sync</p>"
    )
    assert markdown_inline("Rebuilt the profile") == "Rebuilt the profile"
    assert markdown("") == ""
    assert markdown(None) == ""


def test_inline_has_no_paragraph() -> None:
    assert markdown_inline("Run `sfc /scannow` **as admin**") == (
        "Run <code>sfc /scannow</code> <strong>as admin</strong>"
    )


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "</script><script>alert(1)</script><img src=x onerror=alert(2)>",
        '<img src="x" onerror="alert(2)">',
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=https://evil.example></iframe>",
        '<div style="background:url(https://evil.example/x)">x</div>',
        "<!-- comment --><b onclick=alert(1)>b</b>",
    ],
)
def test_raw_html_is_text(source: str) -> None:
    for html in (markdown(source), markdown_inline(source)):
        # Only the paragraph, and a bare https:// URL inside the text made a link (it is one).
        assert tags(html) <= {"p", "a"}, html
        assert "&lt;" in html  # shown, escaped: the reader sees what was written
        assert not re.search(r"<[^>]*\son\w+=", html), html


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](javascript&#58;alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[x](file:///etc/passwd)",
        "[x](//evil.example/)",
        "[x](/logout)",
        "<javascript:alert(1)>",
        "javascript:alert(1)",
    ],
)
def test_links_other_than_http_https_mailto_are_not_links(source: str) -> None:
    html = markdown(source)
    assert "<a" not in html, html
    assert "href" not in html


@pytest.mark.parametrize(
    "source",
    ["![cat](https://evil.example/cat.png)", "![](data:image/png;base64,iVBORw0KGgo=)"],
)
def test_no_images_at_most_a_link_to_them(source: str) -> None:
    html = markdown(source)
    assert "<img" not in html
    assert "src=" not in html
    if "https://" in source:
        assert html == (f'<p><a href="https://evil.example/cat.png" target="_blank" {SAFE_REL}>cat</a></p>')


def test_a_link_text_cannot_smuggle_markup() -> None:
    html = markdown('[<img src=x onerror=alert(1)>](https://example.com "t\\" onmouseover=\\"alert(1)")')
    assert "<img" not in html
    assert "onmouseover=" not in html.replace("onmouseover=&quot;", "")  # only inside the quoted title
    assert tags(html) == {"p", "a"}


def test_the_sanitizer_alone_keeps_only_the_allowlist() -> None:
    """Were markdown-it ever to let HTML through, nh3 still would not."""
    dirty = (
        '<p onclick="x()" style="color:red" class="c">t</p><script>alert(1)</script>'
        '<img src="https://evil.example/p.png"><a href="javascript:alert(1)">j</a>'
        '<a href="//evil.example/">r</a><a href="/logout">l</a><a href="https://ok.example/" target="_top">ok</a>'
        "<iframe></iframe><style>p{}</style><h1>h</h1>"
    )
    assert sanitize_html(dirty) == (
        f'<p>t</p><a>j</a><a>r</a><a>l</a><a href="https://ok.example/" target="_blank" {SAFE_REL}>ok</a>h'
    ).replace("<a>", f'<a target="_blank" {SAFE_REL}>')


def test_clock_utc_says_utc_and_the_day_when_not_today() -> None:
    now = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    assert clock_utc("2026-03-02T14:05:09.123+00:00", now) == "14:05 UTC"
    assert clock_utc(datetime(2026, 3, 1, 23, 59, tzinfo=UTC), now) == "2026-03-01 23:59 UTC"
    assert clock_utc(None) == ""

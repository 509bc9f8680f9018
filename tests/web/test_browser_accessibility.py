"""Basic accessibility of every main screen in a real browser (issue #6): each form control has a
label, text has enough contrast against what is really behind it (WCAG 2.x AA: 4.5:1, 3:1 for large
text), and a person can report a hazard with the keyboard alone, seeing where the focus is.

The checks run in the page on the computed styles, so they judge what Chromium draws, not the CSS
as written. Charts are canvases (ECharts); their words are not DOM text and are not judged here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hazardloop.alarms.models import Severity
from hazardloop.demo.build import DEMO_PASSWORD, build_demo
from hazardloop.hazards.models import HazardState
from hazardloop.hazards.reference import policy

pytestmark = pytest.mark.browser
DESKTOP = {"width": 1280, "height": 900}
SCREENS = ("/cockpit", "/plant", "/hazards", "/hazards?mine=true&open=true", "/hazards/new", "/alarms",
           "/admin/plant", "/admin/sensors", "/admin/users", "/admin/channels")

VISIBLE = """(el) => { const r = el.getBoundingClientRect(); const cs = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && cs.visibility !== 'hidden' && cs.display !== 'none'; }"""

UNLABELLED = f"""() => {{
  const visible = {VISIBLE};
  document.querySelectorAll('details').forEach((d) => {{ d.open = true; }});  // the move forms, folded
  const name = (el) => (el.labels && [...el.labels].some((l) => l.innerText.trim()))
    || (el.getAttribute('aria-label') || '').trim() || el.getAttribute('aria-labelledby')
    || (el.getAttribute('title') || '').trim();
  const missing = [];
  for (const el of document.querySelectorAll('input, select, textarea')) {{
    if (['hidden', 'submit', 'button', 'reset', 'image'].includes(el.type) || !visible(el)) continue;
    if (!name(el)) missing.push(el.outerHTML.slice(0, 160));
  }}
  for (const el of document.querySelectorAll('a[href], button, summary')) {{
    if (!visible(el)) continue;
    const text = (el.innerText || '').trim() || (el.getAttribute('aria-label') || '').trim()
      || (el.getAttribute('title') || '').trim() || [...el.querySelectorAll('img[alt]')].map((i) => i.alt).join('');
    if (!text) missing.push(el.outerHTML.slice(0, 160));
  }}
  return missing;
}}"""

LOW_CONTRAST = f"""() => {{
  const visible = {VISIBLE};
  const parse = (c) => {{
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  }};
  const over = (top, bottom) => [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const luminance = (c) => {{
    const f = (v) => {{ v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }};
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  }};
  const behind = (el) => {{  // the colour really behind the text: every translucent layer down to an opaque one
    const layers = [];
    for (let e = el; e; e = e.parentElement) {{
      const cs = getComputedStyle(e);
      if (cs.backgroundImage !== 'none') return null;  // a picture or gradient: not judged
      const c = parse(cs.backgroundColor);
      if (c && c[3] > 0) {{ layers.push(c); if (c[3] >= 1) break; }}
    }}
    return layers.reverse().reduce((bg, layer) => over(layer, bg), [255, 255, 255, 1]);
  }};
  const found = new Map();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {{
    const text = node.textContent.trim();
    const el = node.parentElement;
    if (!text || !el || !visible(el) || el.closest('[disabled], [aria-disabled=true], option, script, style')) continue;
    const cs = getComputedStyle(el);
    const bg = behind(el);
    const fg = parse(cs.color);
    if (!bg || !fg) continue;
    const l1 = luminance(over(fg, bg)), l2 = luminance(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(cs.fontSize), bold = parseInt(cs.fontWeight, 10) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) {{
      const key = `${{cs.color}} on ${{bg.map(Math.round).join(',')}}`;
      const where = `<${{el.tagName.toLowerCase()}} class="${{el.className}}">`;
      const why = `${{ratio.toFixed(2)}} < ${{need}} "${{text.slice(0, 30)}}" ${{where}}`;
      if (!found.has(key)) found.set(key, `${{key}}: ${{why}}`);
    }}
  }}
  return [...found.values()];
}}"""


@pytest.fixture
def demo_world(db, tmp_path: Path) -> None:  # noqa: ANN001
    build_demo(db, data_dir=tmp_path / "demo", seed=1, days=1, hazards_per_day=0.5)


def _login(page, base: str, username: str, target: str = "/cockpit") -> None:  # noqa: ANN001
    page.goto(f"{base}/login?next={target}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_selector("[data-testid=who]")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_screen_labels_its_controls_and_keeps_text_readable(browser, live_server, demo_world,
                                                                   lang: str) -> None:  # noqa: ANN001
    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{live_server}/lang/{lang}?next=/login")
    problems: dict[str, list[str]] = {}
    login_problems = page.evaluate(UNLABELLED) + page.evaluate(LOW_CONTRAST)
    if login_problems:
        problems["/login"] = login_problems
    _login(page, live_server, "admin")
    page.goto(f"{live_server}/hazards")
    detail = page.locator("[data-testid=hazard-row] a").first.get_attribute("href")
    alarm = re.search(r'href="(/alarms/\d+)"', page.goto(f"{live_server}/alarms").text())
    for path in (*SCREENS, detail, *([alarm.group(1)] if alarm else [])):
        page.goto(f"{live_server}{path}")
        assert page.get_attribute("html", "lang") == lang
        found = page.evaluate(UNLABELLED) + page.evaluate(LOW_CONTRAST)
        if found:
            problems[path] = found
    assert not problems, "\n".join(f"{p}: {x}" for p, xs in problems.items() for x in xs)


def test_every_coloured_tag_is_readable(browser, live_server, demo_world) -> None:  # noqa: ANN001
    """Each state, level, severity and risk-grade tag drawn with its own stylesheet, whether or not the
    demo data happens to show it: the colours are judged, not today's rows."""
    samples = {
        "/hazards": [f"hz-state state-{s.value}" for s in HazardState]
        + [f"hz-level level-{code}" for code in policy().levels]
        + ["hz-flag overdue", *(f"badge grade-{g}" for g in ("red", "orange", "yellow", "blue", "none"))],
        "/alarms": [f"al-sev sev-{s.value}" for s in Severity] + ["al-state is-active", "al-state is-shelved"],
    }
    page = browser.new_page(viewport=DESKTOP)
    _login(page, live_server, "admin")
    problems = []
    for path, classes in samples.items():
        page.goto(f"{live_server}{path}")
        page.evaluate(
            """(classes) => { const box = document.createElement('p'); box.className = 'card';
                for (const c of classes) { const s = document.createElement('span'); s.className = c;
                  s.textContent = '示例 Sample ' + c; box.append(s, ' '); }
                document.querySelector('main').prepend(box); }""",
            classes,
        )
        problems += [f"{path}: {x}" for x in page.evaluate(LOW_CONTRAST)]
    assert not problems, "\n".join(problems)


def test_a_hazard_is_reported_with_the_keyboard_alone(browser, live_server, demo_world) -> None:  # noqa: ANN001
    """From the QR link's form: Tab between fields, type, Enter on the button; a focus ring each step."""
    page = browser.new_page(viewport=DESKTOP)
    _login(page, live_server, "operator", "/hazards/new?area=TANK")
    page.wait_for_selector("[data-testid=report-form]")

    def tab_to(selector: str, limit: int = 40) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            focused = page.evaluate_handle("document.activeElement")
            ring = page.evaluate(
                "(el) => { const cs = getComputedStyle(el); return (cs.outlineStyle !== 'none'"
                " && parseFloat(cs.outlineWidth) >= 2) || cs.boxShadow !== 'none'; }",
                focused,
            )
            tag = page.evaluate("(el) => el.outerHTML.slice(0, 80)", focused)
            assert ring, f"no visible focus on {tag}"
            if page.evaluate("(args) => args[0].matches(args[1])", [focused, selector]):
                return
        raise AssertionError(f"{selector} not reached with Tab")

    tab_to("textarea[name=description]")
    page.keyboard.type("楼梯扶手松动，有坠落风险")
    tab_to("[data-testid=report-submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=reported-banner]")
    assert "TANK" in page.inner_text("main")

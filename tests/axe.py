"""axe-core in a Playwright page: the serious and critical WCAG 2.x A/AA violations of what it shows.

axe-core comes from npm (`scripts/setup.sh --test` installs it into node_modules/, never committed).
Without it, a test that needs it is skipped on a developer machine and fails under CI
(`tests.servers.unavailable`). Used by tests/test_browser_workspace.py and bench/workspace.py.

    from tests.axe import run_axe
    assert run_axe(page) == []
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE_JS = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
#: The rule sets checked: WCAG 2.0, 2.1 and 2.2, levels A and AA.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
IMPACTS = ("serious", "critical")
MISSING = "node_modules/axe-core/axe.min.js is missing: run scripts/setup.sh --test (npm install axe-core@4)"


def axe_script() -> Path | None:
    """The axe-core script, or None when it is not installed."""
    return AXE_JS if AXE_JS.is_file() else None


def violations_of(page: Any, script: Path = AXE_JS) -> list[dict[str, Any]]:
    """Inject axe into `page` (unless it is there) and return its serious and critical violations:
    dicts with id, impact, help, helpUrl and nodes (each with target, html and failureSummary)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        try:
            page.add_script_tag(path=str(script))
        except Exception as exc:  # noqa: BLE001 - Playwright's Error, without importing it here
            if "Content Security Policy" not in str(exc):
                raise
            # Our pages forbid inline scripts (CSP default-src 'self'), and a script tag with the source
            # inline is what add_script_tag makes. The DevTools protocol's evaluate is not bound by the
            # page's CSP: the same source, run there, defines window.axe in the page's own world.
            page.evaluate(script.read_text(encoding="utf-8") + "\n;undefined")
    result = page.evaluate(
        """tags => window.axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
            .then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                nodes: v.nodes.map(n => ({target: n.target.map(String), html: n.html,
                                          failureSummary: n.failureSummary}))})))""",
        WCAG_TAGS)
    return [v for v in result if v["impact"] in IMPACTS]


def run_axe(page: Any) -> list[dict[str, Any]]:
    """The page's serious and critical WCAG 2.x A/AA violations; skips (fails under CI) without axe-core."""
    script = axe_script()
    if script is None:
        from tests.servers import unavailable

        unavailable(MISSING)
    return violations_of(page, script)


def describe(violations: list[dict[str, Any]]) -> str:
    """One line per rule, with the first elements it found: for assertion messages."""
    lines = []
    for v in violations:
        targets = "; ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        more = f" (+{len(v['nodes']) - 5} more)" if len(v["nodes"]) > 5 else ""
        lines.append(f"{v['id']} [{v['impact']}] {v['help']}: {targets}{more}")
        summary = (v["nodes"][0].get("failureSummary") or "").splitlines() if v["nodes"] else []
        if len(summary) > 1:
            lines.append(f"    first element: {summary[1].strip()}")
    return "\n".join(lines)

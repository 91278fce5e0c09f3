"""Render a report caption as ``snakemake --report`` does (Jinja, then docutils) and list its system messages."""

from __future__ import annotations

import io


def rst_problems(text: str, jinja: bool = True) -> list[str]:
    """System messages of ``text`` rendered as the report renders a caption (Jinja, then docutils)."""
    from docutils import nodes
    from docutils.core import publish_doctree
    from jinja2 import Environment

    class _Snakemake:
        config = {"scale": "smoke"}

    rendered = (
        Environment(trim_blocks=True, lstrip_blocks=True)
        .from_string(text)
        .render(snakemake=_Snakemake, categories={}, files=[])
        if jinja
        else text
    )
    stream = io.StringIO()
    doctree = publish_doctree(
        rendered, settings_overrides={"report_level": 1, "halt_level": 5, "warning_stream": stream}
    )
    msgs = [m.astext() for m in doctree.findall(nodes.system_message)]
    if stream.getvalue().strip():
        msgs.append(stream.getvalue().strip())
    return msgs


def assert_clean(text: str, what: str) -> None:
    problems = rst_problems(text)
    assert not problems, f"{what}: docutils reports\n" + "\n".join(problems) + "\n--- caption ---\n" + text

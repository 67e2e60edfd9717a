"""Every report caption is reStructuredText that docutils renders without a message (the template's values aside)."""

import re
from pathlib import Path

import pytest
from docutils.core import publish_parts

CAPTIONS = sorted(Path(__file__).resolve().parents[1].glob("workflow/report/*.rst"))


@pytest.mark.parametrize("caption", CAPTIONS, ids=[c.stem for c in CAPTIONS])
def test_caption_renders_without_a_docutils_message(caption):
    text = re.sub(r"\{%.*?%\}", "", caption.read_text(), flags=re.S)  # the template's logic out,
    text = re.sub(r"\{\{.*?\}\}", "value", text, flags=re.S)  # and its values as a plain word
    html = publish_parts(text, writer="html", settings_overrides={"halt_level": 2, "report_level": 2})["html_body"]
    assert "system-message" not in html

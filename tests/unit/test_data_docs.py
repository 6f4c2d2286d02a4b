"""The Data Docs views compile GX's page templates once per process (the pages themselves are
checked by the quality gate's integration tests)."""

from __future__ import annotations

import jinja2
import pytest
from great_expectations.render.view import DefaultJinjaPageView

from retail_pipeline import data_docs


def test_a_second_view_reuses_the_first_ones_compiled_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    data_docs.PageView().env.get_template("page.j2")  # compiled here, or by an earlier view

    def compile_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("a template was compiled again")

    # A new view has a new Jinja environment (an empty template cache of its own)...
    second = data_docs.PageView()
    monkeypatch.setattr(jinja2.Environment, "compile", compile_again)
    # ...and still loads the page template without compiling it.
    template = second.env.get_template("page.j2")
    assert template.name == "page.j2"
    with pytest.raises(AssertionError, match="compiled again"):
        DefaultJinjaPageView().env.get_template("page.j2")  # GX's own view compiles its own

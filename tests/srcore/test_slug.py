"""One slug rule (`srcore.jobspec.layout.slug`) for download names and study child folders;
the names already on disk keep their spelling."""

from __future__ import annotations

import pytest

from srcore.jobspec.layout import child_dir_name, job_tag, slug


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MNLI · PoE 50%", "mnli-poe-50"),
        ("Débiaisé · 偏り", "debiaise"),
        ("--a--b--", "a-b"),
        ("", ""),
        ("x" * 39 + " y", "x" * 39),  # cut at 40, no hyphen left at the end
    ],
)
def test_download_names_are_lower_case_words_and_hyphens(text, expected):
    assert slug(text) == expected


@pytest.mark.parametrize(
    ("key", "folder"),
    [
        # spelled as the study runner has always named them (folders of running studies)
        ("debias.loss=poe; training.learning_rate=0.0001",
         "debias.loss=poe_training.learning_rate=0.0001"),
        ("row:IMP (poe)", "row_IMP_poe"),
        ("pruning.sparsities=[0.5, 0.7]", "pruning.sparsities=_0.5_0.7"),
        ("base", "base"),
        ("", "base"),
        ("Débiaisé", "Debiaise"),
    ],
)  # fmt: skip
def test_study_child_folders_keep_their_setting_readable(key, folder):
    assert child_dir_name(key) == folder


def test_slug_options():
    assert slug("A b.c", keep=".", fill="_", lower=False) == "A_b.c"
    assert slug("???", empty="base") == "base"
    assert slug("abcdef", max_chars=3) == "abc"
    assert job_tag("3f2a1b9c-0000-0000-0000-000000000000", "MNLI · PoE") == "mnli-poe-3f2a1b9c"

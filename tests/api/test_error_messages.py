"""422 messages a person can act on: an unknown key is named with close matches, and no
"Value error, " prefix is left from pydantic."""

from __future__ import annotations


def errors_of(client, auth, body) -> list[dict]:
    response = client.post("/jobs", json=body, headers=auth)
    assert response.status_code == 422, response.text
    return response.json()["detail"]


def test_a_typo_is_named_with_the_intended_field(client, auth):
    [error] = errors_of(client, auth, {"pruning": {"sparsitys": [0.5]}})
    assert error["loc"] == ["body", "pruning", "sparsitys"]
    assert error["msg"] == "unknown field 'sparsitys'; did you mean 'sparsities'?"
    assert error["ctx"] == {"key": "sparsitys", "suggestions": ["sparsities"]}
    [top] = errors_of(client, auth, {"debais": {"loss": "poe"}})
    assert top["msg"] == "unknown field 'debais'; did you mean 'debias'?"


def test_an_unknown_key_without_a_close_match_lists_what_is_allowed(client, auth):
    [error] = errors_of(client, auth, {"debias": {"zzz": 1}})
    assert error["msg"].startswith("unknown field 'zzz'; allowed here: ")
    assert "loss" in error["msg"] and "bias" in error["msg"]


def test_no_value_error_prefix(client, auth):
    body = {"debias": {"loss": "conf_reg", "teacher": {"source": "none"}}}
    detail = errors_of(client, auth, body)
    assert detail and not any(e["msg"].startswith("Value error") for e in detail)


def test_a_hub_model_that_cannot_load_offline_is_refused_at_submission(
    client, auth, monkeypatch, tmp_path
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    [error] = errors_of(client, auth, {"model": {"name_or_path": "bert-base-uncased"}})
    assert error["loc"] == ["body", "model", "name_or_path"]
    assert "not in this service's hub cache and the service is offline" in error["msg"]
    # The bundled model needs no hub at all.
    response = client.post("/jobs", json={"model": {"name_or_path": "all-MiniLM-L6-v2"}},
                           headers=auth)  # fmt: skip
    assert response.status_code == 201, response.text


def test_the_bundled_names_are_srcore_s():
    from srcore.jobspec.hub_check import BUNDLED_MODEL_NAMES
    from srcore.models import BUNDLED_MODELS

    assert set(BUNDLED_MODEL_NAMES) == set(BUNDLED_MODELS)

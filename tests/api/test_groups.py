"""Questions about populations of runs, on both databases: groups, contrast, cohort and
run comparison, trends, keys, and the reason / rejection filters of the lists.

The data is the support bot's cohort bug in miniature: for ``de-DE`` customers the locale
filter rejects all 40 passages and a fallback refills 9, so every run goes 40 → 9 and the
count-based elimination is 77.5% for everyone; only the rejections tell them apart.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api._data import at, decision, run, step

LOCALES = ["en-US", "de-DE", "fr-FR", "en-GB"]
PIPELINE = "support-answer"


async def _load(client: httpx.AsyncClient, runs_per_locale: int = 3) -> dict[str, list[str]]:
    """Support runs: per locale ``runs_per_locale``; returns run ids by locale."""
    by_locale: dict[str, list[str]] = {locale: [] for locale in LOCALES}
    runs: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    n = 0
    for i in range(runs_per_locale):
        for locale in LOCALES:
            n += 1
            german = locale == "de-DE"
            body = run(
                pipeline=PIPELINE,
                status="success",
                started=n * 60,
                ended=n * 60 + 5,
                metadata={"locale": locale, "channel": "chat" if i % 2 else "email", "n": n},
                output={"policy": "returns-us" if german or locale == "en-US" else "returns-eu"},
            )
            runs.append(body)
            by_locale[locale].append(body["id"])
            rejected = 40 if german else 31
            decisions = [decision(f"p{k}", "rejected", reason="locale_mismatch") for k in range(3)]
            if german:
                decisions.append(decision("p-us-1", "accepted", reason="fallback_locale"))
            steps += [
                step(
                    body["id"],
                    name="retrieve_passages",
                    type="retrieval",
                    seq=0,
                    started=n * 60 + 1,
                    input_count=1,
                    output_count=40,
                    params={"index": "help-centre"},
                ),
                step(
                    body["id"],
                    name="locale_filter",
                    seq=1,
                    started=n * 60 + 2,
                    input_count=40,
                    output_count=9,
                    reason_counts={"locale_mismatch": rejected},
                    params={"locale": locale, "fallback_locale": "en-US"},
                    detail="sampled",
                    decisions=decisions,
                ),
            ]
    response = await client.post("/batch", json={"runs": runs, "steps": steps})
    assert response.status_code in (200, 201, 202), response.text
    return by_locale


async def _get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_groups_by_locale_marks_the_german_group_and_names_step_and_reason(
    client: httpx.AsyncClient,
) -> None:
    await _load(client)
    body = await _get(client, "/groups", pipeline=PIPELINE, by="metadata.locale")
    assert body["runs"] == 12 and body["sampled"] is False
    items = {item["value"]: item for item in body["items"]}
    assert set(items) == set(LOCALES)
    german = items["de-DE"]
    assert german["runs"] == 3 and german["statuses"] == {"success": 3}
    assert german["outlier"] is True
    assert [i["value"] for i in body["items"] if i["outlier"]] == ["de-DE"]
    assert german["outputs"] == [{"value": '{"policy":"returns-us"}', "runs": 3}]
    filt = next(s for s in german["steps"] if s["name"] == "locale_filter")
    assert filt["median_input"] == 40 and filt["median_output"] == 9
    assert filt["reason_rates"] == {"locale_mismatch": 1.0}
    assert filt["rejected_rate"] == 1.0 and filt["readmitted_runs"] == 3
    # Constant within the group: shown; the channel varies, the locale does not.
    assert filt["params"] == {"locale": "de-DE", "fallback_locale": "en-US"}
    english = next(s for s in items["en-US"]["steps"] if s["name"] == "locale_filter")
    assert english["reason_rates"] == {"locale_mismatch": 31 / 40}
    assert body["outlier"] == {
        "value": "de-DE",
        "step": "locale_filter",
        "reason": "locale_mismatch",
        "rate": 1.0,
        "rest_rate": 31 / 40,
    }


async def test_groups_by_status_output_and_step_param(client: httpx.AsyncClient) -> None:
    await _load(client, runs_per_locale=2)
    by_status = await _get(client, "/groups", pipeline=PIPELINE, by="status")
    assert [(i["value"], i["runs"]) for i in by_status["items"]] == [("success", 8)]
    assert by_status["outlier"] is None
    by_output = await _get(client, "/groups", pipeline=PIPELINE, by="output.policy")
    assert {i["value"]: i["runs"] for i in by_output["items"]} == {
        "returns-us": 4,
        "returns-eu": 4,
    }
    by_param = await _get(
        client, "/groups", pipeline=PIPELINE, by="step.locale_filter.params.locale"
    )
    assert {i["value"]: i["runs"] for i in by_param["items"]} == dict.fromkeys(LOCALES, 2)
    # Run filters narrow the runs grouped.
    narrowed = await _get(
        client, "/groups", pipeline=PIPELINE, by="metadata.locale", **{"metadata.channel": "chat"}
    )
    assert sum(i["runs"] for i in narrowed["items"]) == 4


async def test_groups_sample_is_bounded_and_says_so(client: httpx.AsyncClient) -> None:
    await _load(client, runs_per_locale=2)
    body = await _get(client, "/groups", pipeline=PIPELINE, by="metadata.locale", sample=5)
    assert body["runs"] == 5 and body["sampled"] is True


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pipeline": PIPELINE, "by": "locale"}, "by"),
        ({"pipeline": PIPELINE, "by": "step.x.params."}, "by"),
        ({"by": "status"}, "pipeline"),
        ({"pipeline": PIPELINE, "by": "status", "sample": 0}, "sample"),
    ],
)
async def test_groups_bad_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    response = await client.get("/groups", params=params)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == field


async def test_contrast_ranks_the_locale_first_and_the_reason_share(
    client: httpx.AsyncClient,
) -> None:
    await _load(client)
    body = await _get(
        client, "/contrast", pipeline=PIPELINE, reason="locale_mismatch", min_reason_rate=1
    )
    assert (body["inside"], body["outside"]) == (3, 9)
    first = body["items"][0]
    assert first["score"] == 1.0
    assert first["field"] in ("metadata.locale", "step.locale_filter.params.locale")
    assert (first["value"], first["inside"], first["outside"]) == ("de-DE", 3, 0)
    assert {i["field"] for i in body["items"][:2]} == {
        "metadata.locale",
        "step.locale_filter.params.locale",
    }
    # An identifier per run (metadata.n) separates nothing and is left out.
    assert "metadata.n" not in {i["field"] for i in body["items"]}
    assert body["reasons"][0] == {
        "step": "locale_filter",
        "reason": "locale_mismatch",
        "inside": 1.0,
        "outside": 31 / 40,
        "gap": 1.0 - 31 / 40,
    }


async def test_contrast_without_a_selection_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/contrast", params={"pipeline": PIPELINE})
    assert response.status_code == 422
    assert "run filter" in response.json()["message"]


async def test_contrast_notes_a_numeric_parameter_100_times_smaller(
    client: httpx.AsyncClient,
) -> None:
    runs, steps = [], []
    for n in range(10):
        bad = n < 4
        body = run(
            pipeline="recommender",
            status="success",
            started=n,
            metadata={"app_version": "4.2.0" if bad else "4.1.9"},
        )
        runs.append(body)
        steps.append(
            step(
                body["id"],
                name="price_band_filter",
                input_count=100,
                output_count=2 if bad else 40,
                params={"max_price_cents": 60 if bad else 6000},
            )
        )
    await client.post("/batch", json={"runs": runs, "steps": steps})
    body = await _get(
        client, "/contrast", pipeline="recommender", **{"metadata.app_version": "4.2.0"}
    )
    fields = {i["field"]: i for i in body["items"]}
    param = fields["step.price_band_filter.params.max_price_cents"]
    assert (param["value"], param["inside"], param["outside"]) == (60, 4, 0)
    assert param["note"] == "≈ 100× smaller"  # noqa: RUF001


async def test_runs_and_steps_filter_by_reason_and_rejection_rate(
    client: httpx.AsyncClient,
) -> None:
    by_locale = await _load(client)
    everyone = await _get(client, "/runs", pipeline=PIPELINE, reason="locale_mismatch", limit=50)
    assert len(everyone["items"]) == 12
    whole = await _get(
        client, "/runs", pipeline=PIPELINE, reason="locale_mismatch", min_reason_rate=1
    )
    assert {r["id"] for r in whole["items"]} == set(by_locale["de-DE"])
    rejected = await _get(client, "/runs", min_rejected_rate=0.99)
    assert {r["id"] for r in rejected["items"]} == set(by_locale["de-DE"])
    # The count-based rate cannot tell them apart: 40 → 9 everywhere.
    by_count = await _get(client, "/runs", min_elimination_rate=0.9)
    assert by_count["items"] == []
    # A reason only some decisions carry (fallback_locale is an acceptance reason).
    fallback = await _get(client, "/steps", reason="fallback_locale")
    assert {s["run_id"] for s in fallback["items"]} == set(by_locale["de-DE"])
    assert all(s["readmitted"] and s["rejected_rate"] == 1.0 for s in fallback["items"])
    assert all(s["elimination_rate"] == 0.775 for s in fallback["items"])
    none = await _get(client, "/steps", reason="no_such_reason")
    assert none["items"] == []


async def test_steps_filter_by_run_metadata_and_metadata_not_equal(
    client: httpx.AsyncClient,
) -> None:
    by_locale = await _load(client)
    steps = await _get(client, "/steps", name="locale_filter", **{"metadata.locale": "de-DE"})
    assert {s["run_id"] for s in steps["items"]} == set(by_locale["de-DE"])
    assert all(s["params"]["locale"] == "de-DE" for s in steps["items"])
    others = await _get(
        client, "/runs", pipeline=PIPELINE, limit=50, **{"metadata.locale!": "de-DE"}
    )
    assert {r["id"] for r in others["items"]} == {
        i for locale, ids in by_locale.items() if locale != "de-DE" for i in ids
    }


async def test_metadata_not_equal_keeps_runs_without_the_key(client: httpx.AsyncClient) -> None:
    plain = run(pipeline="p", started=1)
    tagged = run(pipeline="p", started=2, metadata={"locale": "de-DE"})
    await client.post("/runs", json=[plain, tagged])
    response = await client.get("/runs?metadata.locale!=de-DE")
    assert [r["id"] for r in response.json()["items"]] == [plain["id"]]


async def test_compare_runs_ranks_the_rejection_above_count_noise(
    client: httpx.AsyncClient,
) -> None:
    by_locale = await _load(client, runs_per_locale=1)
    body = await _get(client, "/compare", a=by_locale["en-US"][0], b=by_locale["de-DE"][0])
    first = body["first_difference"]
    assert first["step"] == "locale_filter"
    assert first["kind"] == "params"  # the locale parameter itself differs
    kinds = [d["kind"] for d in body["differences"]]
    assert "rejected_all" in kinds
    assert kinds.index("rejected_all") < kinds.index("reason_counts")
    filt = next(s for s in body["steps"] if s["name"] == "locale_filter")
    assert filt["position"] == 2
    assert filt["reason_counts"] == [{"reason": "locale_mismatch", "a": 31, "b": 40}]
    assert filt["a"]["readmitted"] is False and filt["b"]["readmitted"] is True
    assert body["metadata"][0]["key"] in ("channel", "locale", "n")


async def test_compare_unknown_run_is_404_and_bad_id_is_422(client: httpx.AsyncClient) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    response = await client.get("/compare", params={"a": missing, "b": missing})
    assert response.status_code == 404
    response = await client.get("/compare", params={"a": "nope", "b": missing})
    assert response.status_code == 422 and response.json()["fields"][0]["field"] == "a"


async def test_compare_cohorts_names_the_first_divergence(client: httpx.AsyncClient) -> None:
    await _load(client)
    body = await _get(client, "/compare", pipeline=PIPELINE, a="metadata.locale:de-DE", b="rest")
    assert (body["a"]["runs"], body["b"]["runs"]) == (3, 9)
    assert body["first_divergence"]["step"] == "locale_filter"
    assert body["first_divergence"]["reason"] == "locale_mismatch"
    filt = next(s for s in body["steps"] if s["name"] == "locale_filter")
    assert filt["a"]["reason_rates"] == {"locale_mismatch": 1.0}
    assert filt["b"]["params"] == {"fallback_locale": "en-US"}


async def test_trends_per_bucket_show_the_reason_share(client: httpx.AsyncClient) -> None:
    await _load(client)
    body = await _get(
        client,
        "/trends",
        pipeline=PIPELINE,
        step="locale_filter",
        bucket="1h",
        since=at(-3600),
        until=at(3 * 3600),
    )
    assert sum(b["runs"] for b in body["items"]) == 12
    # Every hour of the range, empty ones too: a chart's x axis is time.
    assert len(body["items"]) == 5 and body["items"][0]["runs"] == 0
    bucket = next(b for b in body["items"] if b["runs"])
    assert bucket["steps"] == bucket["runs"]
    assert bucket["reason_rates"]["locale_mismatch"] == pytest.approx((3 * 40 + 9 * 31) / (12 * 40))
    for edge in (
        {"until": "0001-01-01T00:00:00Z"},
        {"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T00:00:00Z"},
    ):
        response = await client.get(
            "/trends", params={"pipeline": PIPELINE, "bucket": "366d", **edge}
        )
        assert response.status_code == 200, response.text
    for bad in ("1x", "0h", "99999999d"):
        response = await client.get("/trends", params={"pipeline": PIPELINE, "bucket": bad})
        assert response.status_code == 422 and response.json()["fields"][0]["field"] == "bucket"


async def test_pipeline_keys_list_metadata_and_params_with_counts(
    client: httpx.AsyncClient,
) -> None:
    await _load(client)
    body = await _get(client, f"/pipelines/{PIPELINE}/keys")
    metadata = {m["key"]: m for m in body["metadata"]}
    assert {v["value"]: v["runs"] for v in metadata["metadata.locale"]["values"]} == dict.fromkeys(
        LOCALES, 3
    )
    params = {p["key"] for p in body["params"]}
    assert "step.locale_filter.params.fallback_locale" in params
    assert body["steps"] == ["retrieve_passages", "locale_filter"]
    response = await client.get("/pipelines/nothing-here/keys")
    assert response.status_code == 404


async def test_openapi_documents_the_metadata_filter_and_the_new_filters(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path in ("/runs", "/steps", "/groups", "/contrast"):
        names = {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
        assert "metadata.<key>" in names, path
        assert {"reason", "min_reason_rate", "min_rejected_rate"} <= names, path


async def test_runs_count_is_exact_and_follows_the_filters(client: httpx.AsyncClient) -> None:
    await _load(client)
    assert await _get(client, "/runs/count", pipeline=PIPELINE) == {"total": 12, "exact": True}
    german = await _get(client, "/runs/count", **{"metadata.locale": "de-DE"})
    assert german == {"total": 3, "exact": True}
    response = await client.get("/runs/count", params={"min_reason_rate": 2})
    assert response.status_code == 422


HOSTILE = ["'; DROP TABLE runs; --", '" OR 1=1 --', "\\u0000", "ü" * 300, "%", "_", "{}", "$.a"]


@pytest.mark.parametrize("text", HOSTILE)
async def test_hostile_values_in_the_population_queries_are_answered_never_500(
    client: httpx.AsyncClient, text: str
) -> None:
    await _load(client, runs_per_locale=1)
    requests = [
        ("/groups", {"pipeline": text, "by": f"metadata.{text}"}),
        ("/groups", {"pipeline": PIPELINE, "by": f"step.{text}.params.{text}", "reason": text}),
        ("/contrast", {"pipeline": PIPELINE, f"metadata.{text}!": text, "min_reason_rate": 0.5}),
        ("/compare", {"pipeline": PIPELINE, "a": f"output.{text}:{text}", "b": text}),
        ("/trends", {"pipeline": text, "step": text}),
        ("/runs", {"reason": text, "min_reason_rate": 1, f"metadata.{text}": text}),
        ("/steps", {"reason": text, f"metadata.{text}!": text}),
        ("/runs/count", {"reason": text}),
        (f"/pipelines/{text}/keys", {}),
    ]
    for path, params in requests:
        response = await client.get(path, params=params)
        assert response.status_code in (200, 404, 422), (path, response.text)
    # Nothing was dropped or changed.
    assert (await _get(client, "/runs/count")) == {"total": 4, "exact": True}

"""Ranking metrics against pytrec_eval, and the BEIR runner end to end on a tiny folder."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.evaluation import metrics
from rag.evaluation.beir import load_beir, run_beir
from rag.settings import Settings

pytrec_eval = pytest.importorskip("pytrec_eval", reason="pip install -e '.[eval]' (pytrec-eval-terrier)")

CUTS = (1, 3, 5, 10, 100)
OURS = {"ndcg": "ndcg_cut_{k}", "recall": "recall_{k}", "hit": "success_{k}"}


def trec(run, qrels):
    """pytrec_eval's per-query values for every metric and cut we implement."""
    measures = {"ndcg_cut." + ",".join(map(str, CUTS)), "recall." + ",".join(map(str, CUTS)), "success.1,5,10"}
    out = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    # trec_eval's recip_rank has no cut: score the run truncated to k in our order instead
    for k in CUTS:
        cut = {q: {d: s for d, s in docs.items() if d in metrics.ranked(docs)[:k]} for q, docs in run.items()}
        for q, v in pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut).items():
            out[q][f"rr_{k}"] = v["recip_rank"]
    return out


def assert_same_as_trec(run, qrels):
    expected = trec(run, qrels)
    assert expected, "pytrec_eval scored no query: the fixture is wrong"
    for k in CUTS:
        for name, fn in metrics.METRICS.items():
            ours = fn(run, qrels, k)
            key = f"rr_{k}" if name == "mrr" else OURS[name].format(k=k)
            for qid, values in expected.items():
                if qid not in ours:  # no relevant document: left out of our means
                    assert max(qrels[qid].values()) < 1 and values.get(key, 0.0) == 0.0
                elif key in values:
                    assert ours[qid] == pytest.approx(values[key], abs=1e-12), (name, k, qid)


def test_hand_made_run_with_ties_and_grades():
    qrels = {
        "q1": {"a": 1, "b": 2, "c": 0},  # graded, with a judged non-relevant document
        "q2": {"x": 1},
        "q3": {"y": 1, "z": 1},
    }
    run = {
        "q1": {"a": 1.0, "b": 1.0, "c": 2.0, "d": 1.0},  # a three-way tie broken by doc id, descending
        "q2": {"w": 0.3, "x": 0.1},
        "q3": {"n1": 5.0, "n2": 4.0},  # retrieves nothing relevant
    }
    assert metrics.ranked(run["q1"]) == ["c", "d", "b", "a"]
    assert_same_as_trec(run, qrels)
    ndcg = metrics.ndcg_at_k(run, qrels, 3)
    assert ndcg["q1"] == pytest.approx((2 / 2) / (2 + 1 / 1.584962500721156))  # b at rank 3, ideal b, a
    assert ndcg["q3"] == 0.0
    assert metrics.mrr_at_k(run, qrels, 10) == {"q1": pytest.approx(1 / 3), "q2": 0.5, "q3": 0.0}


def test_query_missing_from_run_scores_zero_and_unjudged_queries_are_skipped():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}  # q3 has no relevant document
    run = {"q1": {"a": 1.0}}
    for fn in metrics.METRICS.values():
        assert fn(run, qrels, 10) == {"q1": 1.0, "q2": 0.0}
    assert metrics.evaluate(run, qrels, ["ndcg@10", "hit@1"]) == {"ndcg@10": 0.5, "hit@1": 0.5}


@pytest.mark.parametrize("seed", range(12))
def test_random_runs_match_pytrec_eval(seed):
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(25):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 8))
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        retrieved = rng.sample(docs, rng.randint(1, 50))
        # coarse scores make ties common, so tie-breaking is exercised too
        run[qid] = {d: round(rng.uniform(0, 3), 1) for d in retrieved}
    assert_same_as_trec(run, qrels)
    ours = metrics.evaluate(run, qrels, ["ndcg@10", "recall@100"])
    means = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    judged = [q for q in qrels if any(g >= 1 for g in qrels[q].values())]
    assert ours["ndcg@10"] == pytest.approx(sum(means[q]["ndcg_cut_10"] for q in judged) / len(judged))
    assert ours["recall@100"] == pytest.approx(sum(means[q]["recall_100"] for q in judged) / len(judged))


@pytest.mark.parametrize("name", ["ndcg", "ndcg@0", "map@10", "recall@x", ""])
def test_unknown_metric_names_are_refused(name):
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.evaluate({}, {}, [name])


# -- the BEIR runner on a tiny folder in the standard layout ---------------------------------

CORPUS = {
    "101": ("Preference optimisation", "Direct preference optimization trains on chosen and rejected answer pairs."),
    "102": ("Reward models", "A reward model is fitted to human rankings before PPO."),
    "103": ("Sampling", "Temperature rescales logits; nucleus sampling keeps the top-p mass."),
    "104": ("Tokenisers", "Byte pair encoding merges the most frequent pair of symbols."),
    "105": ("Attention", "Self-attention lets every token look at every other token in the sequence."),
    "106": ("", "Mixture of experts routes each token to a few expert feed-forward layers."),
}
QUERIES = {
    "1": "how does nucleus sampling choose tokens",
    "2": "what do reward models learn from human rankings",
    "3": "byte pair encoding merges",
    "4": "experts routing tokens",
}


def write_beir(root: Path, qrels: dict[str, dict[str, int]], split: str = "test", query_file="queries.jsonl") -> Path:
    (root / "qrels").mkdir(parents=True)
    with (root / "corpus.jsonl").open("w") as f:
        for did, (title, text) in CORPUS.items():
            f.write(json.dumps({"_id": did, "title": title, "text": text, "metadata": {}}) + "\n")
    with (root / query_file).open("w") as f:
        for qid, text in QUERIES.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, docs in qrels.items() for d, g in docs.items()]
    (root / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root


def read_run(path: Path) -> tuple[list[list[str]], dict[str, dict[str, float]]]:
    rows = [line.split() for line in path.read_text().splitlines()]
    run: dict[str, dict[str, float]] = {}
    for qid, _, did, _, score, _ in rows:
        run.setdefault(qid, {})[did] = float(score)
    return rows, run


def test_beir_folder_end_to_end_with_the_hashing_embedder(tmp_path):
    qrels = {"1": {"103": 1}, "2": {"102": 1}, "3": {"104": 1, "101": 1}}
    folder = write_beir(tmp_path / "tiny", qrels)
    settings = Settings(embedder="hash", _env_file=None)
    kw = dict(cache_dir=tmp_path / "cache", results_dir=tmp_path / "results")
    report = run_beir(settings, folder, run_file=tmp_path / "runs" / "tiny.run", **kw)

    assert report["documents"] == 6 and report["queries"] == 3  # query 4 is not judged in test
    assert report["build"]["embedded"] == 6 and report["build"]["from_cache"] == 0
    for mode in ("dense", "bm25", "hybrid"):
        rows, run = read_run(tmp_path / "runs" / f"tiny.{mode}.run")
        assert rows and all(len(r) == 6 and r[1] == "Q0" and r[5] == f"rag-{mode}" for r in rows)
        assert {r[0] for r in rows} <= set(qrels) and {r[2] for r in rows} <= set(CORPUS)
        for qid in run:
            ranks = [int(r[3]) for r in rows if r[0] == qid]
            scores = [float(r[4]) for r in rows if r[0] == qid]
            assert ranks == list(range(1, len(ranks) + 1)) and len(ranks) <= 100
            assert scores == sorted(scores, reverse=True)
        # the reported metrics are what anyone re-scoring the run file gets
        rescored = metrics.evaluate(run, qrels, ["ndcg@10", "recall@10", "recall@100", "mrr@10"])
        assert report["modes"][mode] | {"latency_ms": None} == {k: round(v, 4) for k, v in rescored.items()} | {
            "latency_ms": None
        }
        assert report["modes"][mode]["latency_ms"]["p95"] >= report["modes"][mode]["latency_ms"]["p50"] > 0
    # BM25 finds the exact-term matches on this toy corpus
    assert report["modes"]["bm25"]["recall@10"] == 1.0 and report["modes"]["bm25"]["mrr@10"] == 1.0

    saved = json.loads((tmp_path / "results" / "tiny.json").read_text())
    assert saved["modes"] == report["modes"]
    assert "| hybrid |" in (tmp_path / "results" / "tiny.md").read_text()

    again = run_beir(settings, folder, modes=("hybrid",), run_file=tmp_path / "one.run", **kw)
    assert again["build"]["embedded"] == 0 and again["build"]["from_cache"] == 6  # vectors come from the cache
    assert list(again["modes"]) == ["hybrid"] and (tmp_path / "one.run").is_file()
    assert again["modes"]["hybrid"]["ndcg@10"] == report["modes"]["hybrid"]["ndcg@10"]


def test_train_split_reads_queries_all(tmp_path):
    folder = write_beir(tmp_path / "b", {"4": {"106": 1}}, split="train", query_file="queries_all.jsonl")
    data = load_beir(folder, "train")
    assert data.queries == {"4": QUERIES["4"]} and data.corpus["106"][0] == ""
    report = run_beir(
        Settings(embedder="hash", _env_file=None), folder, "train", modes=("bm25",),
        cache_dir=tmp_path / "cache", results_dir=tmp_path / "results",
    )
    assert report["modes"]["bm25"]["recall@10"] == 1.0
    assert (tmp_path / "results" / "b_train.json").is_file()


def test_bad_folders_get_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_beir(tmp_path / "nowhere")
    folder = write_beir(tmp_path / "b", {"1": {"103": 1}})
    with pytest.raises(ConfigError, match=r"'dev' split.*splits present: test"):
        load_beir(folder, "dev")
    with (folder / "corpus.jsonl").open("a") as f:
        f.write("{not json\n")
    with pytest.raises(ConfigError, match=r"corpus.jsonl:7 is not a BEIR record"):
        load_beir(folder)
    with pytest.raises(ConfigError, match="unknown retrieval mode sparse"):
        run_beir(Settings(embedder="hash", _env_file=None), folder, modes=("sparse",), results_dir=None)


def test_qrels_naming_an_unknown_query_is_reported(tmp_path):
    folder = write_beir(tmp_path / "b", {"99": {"103": 1}})
    with pytest.raises(ConfigError, match="judges queries with no text.*99"):
        load_beir(folder)


def test_cli_beir_no_cache_embeds_everything_again(tmp_path):
    """`rag eval --beir DIR` caches vectors; `--no-cache` measures the cold build again."""
    folder = write_beir(tmp_path / "tiny", {"1": {"103": 1}, "2": {"102": 1}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")} | {"RAG_EMBEDDER": "hash"}

    def run(*extra: str) -> dict:
        out = subprocess.run(
            [sys.executable, "-m", "rag", "eval", "--beir", str(folder), *extra],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return json.loads((tmp_path / "eval" / "results" / "tiny.json").read_text())["build"]

    assert run()["embedded"] == 6
    assert run()["embedded"] == 0  # from eval/.cache/ under the working directory
    assert run("--no-cache")["embedded"] == 6

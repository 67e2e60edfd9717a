"""Fault injection: real Snakemake runs of the tiny config with damaged stores, swapped weights, bad inputs.

Each case breaks one thing the way a user or a file system would, then checks what the user sees (a refusal
naming the file, field, layer or chunk, or a rebuild) and that nothing wrong is written. docs/reliability.md
is the table of these cases.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
import zarr
from runs import snakemake, snakemake_command
from safetensors.numpy import load_file, save_file
from test_workflow import tiny_config

from layergeom.analyses.anisotropy.accumulate import centered_feeds
from layergeom.analyses.anisotropy.metrics import write_id
from layergeom.analyses.posctx.components import per_layer_array
from layergeom.extraction.checks import InputError, check_positions
from layergeom.extraction.models import load_model
from layergeom.extraction.sequences import sentence_sequences
from layergeom.extraction.sources import resolve_source
from layergeom.io.atomic import write_parquet
from layergeom.io.integrity import StoreError, read_array, verify_store
from layergeom.io.store import open_hidden
from layergeom.plotting import plt, save
from layergeom.stream.job import stream_shard

STATES = "results/hidden/bert/docs/states.zarr"
TOKENS = "results/hidden/bert/docs/tokens.parquet"
STREAM = "results/parts/bert/docs/stream/0-of-1"


def write_config(workdir: Path, config: dict) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def output(done) -> str:
    """Everything a run printed, with the logs of its failed jobs."""
    return done.stdout + done.stderr


def job_log(workdir: Path, stage: str, name: str) -> str:
    return (workdir / "logs" / stage / f"{name}.log").read_text()


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, text_corpus, tiny_bert, tiny_gpt2) -> Path:
    """The bert/docs store of the tiny config, extracted once; tests work on copies."""
    workdir = tmp_path_factory.mktemp("faults")
    config = tiny_config(text_corpus, tiny_bert, tiny_gpt2)
    config["models"]["bert"]["source"] = "./bert"  # relative: copies of the workdir have the same config
    shutil.copytree(tiny_bert, workdir / "bert")
    write_config(workdir, config)
    done = snakemake(workdir, STATES, TOKENS)
    assert done.returncode == 0, output(done)[-3000:]
    return workdir


@pytest.fixture
def work(extracted, tmp_path) -> Path:
    """A copy of the extracted workdir (time stamps kept, so nothing is out of date)."""
    workdir = tmp_path / "w"
    shutil.copytree(extracted, workdir, symlinks=True)
    return workdir


def chunk_file(workdir: Path, layer: int, chunk: int) -> Path:
    return workdir / STATES / "hidden" / "c" / str(layer) / str(chunk) / "0"


def test_a_missing_components_chunk_is_named(tmp_path):
    path = tmp_path / "components.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    per_layer_array(group, "pos", (2, 3, 4), ("layer", "position", "d"), "positions")[:] = 1.0
    (path / "pos" / "c" / "1" / "0" / "0").unlink()
    with pytest.raises(StoreError, match="missing chunk pos/c/1/0/0"):
        read_array(group, "pos", path)


def test_damaged_chunks_are_errors_named_by_verify(work):
    assert verify_store(work / STATES) > 0
    chunk_file(work, 1, 0).unlink()  # a chunk lost in a copy
    flipped = chunk_file(work, 2, 1)
    data = bytearray(flipped.read_bytes())
    data[10] ^= 0xFF  # one flipped byte
    flipped.write_bytes(bytes(data))
    truncated = chunk_file(work, 0, 2)
    truncated.write_bytes(truncated.read_bytes()[:17])  # an interrupted copy
    with pytest.raises(StoreError) as err:
        verify_store(work / STATES)
    message = str(err.value)
    assert "missing chunk hidden/c/1/0/0" in message
    assert "unreadable chunk hidden/c/2/1/0" in message and "checksum" in message
    assert "unreadable chunk hidden/c/0/2/0" in message
    config = yaml.safe_load((work / "config.yaml").read_text())
    write_config(
        work, {**config, "models": {"bert": config["models"]["bert"]}, "corpora": {"docs": config["corpora"]["docs"]}}
    )
    done = snakemake(work, "verify")
    assert done.returncode != 0
    assert "1 of 1 stores are damaged" in (work / "logs" / "verify.log").read_text()
    assert "missing chunk hidden/c/1/0/0" in (work / "logs" / "verify.log").read_text()


@pytest.mark.slow
def test_missing_chunk_stops_the_statistics_with_the_chunk_named(work):
    chunk_file(work, 1, 0).unlink()
    done = snakemake(work, STREAM)
    assert done.returncode != 0
    log = job_log(work, "stream/bert/docs", "0-of-1")
    assert "layer 1 has non-finite hidden states" in log and "hidden/c/1/0/0" in log
    assert not (work / STREAM).exists()


@pytest.mark.slow
def test_flipped_byte_stops_the_statistics_with_the_chunk_named(work):
    flipped = chunk_file(work, 2, 0)
    data = bytearray(flipped.read_bytes())
    data[3] ^= 0x01
    flipped.write_bytes(bytes(data))
    done = snakemake(work, STREAM)
    assert done.returncode != 0
    log = job_log(work, "stream/bert/docs", "0-of-1")
    assert "layer 2, tokens 0..32 cannot be read from chunk hidden/c/2/0/0" in log and "checksum" in log


def test_new_weights_restart_a_partial_store(work):
    """A killed extraction (its partial store) followed by new weights in the same folder: started over, not mixed."""
    states = work / STATES
    clean_old = open_hidden(states)[:]
    partial = states.with_name(".states.zarr.partial")
    states.rename(partial)
    array = open_hidden(partial, mode="r+")
    array.attrs.update({"complete": False, "completed_tokens": 64})
    weights = work / "bert" / "model.safetensors"
    tensors = load_file(weights)
    save_file({k: (v * 1.5 if v.ndim == 2 else v) for k, v in tensors.items()}, weights, metadata={"format": "pt"})
    done = snakemake(work, STATES)
    assert done.returncode == 0, output(done)[-3000:]
    assert "starting over" in job_log(work, "extract/bert", "docs")
    assert "fingerprint.model" in job_log(work, "extract/bert", "docs")
    fresh = open_hidden(states)[:]
    assert not np.array_equal(fresh[:, :64], clean_old[:, :64])  # the first tokens are from the new weights too


@pytest.mark.slow
def test_model_folder_without_tokenizer_is_refused(work):
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (work / "bert" / name).unlink(missing_ok=True)
    done = snakemake(work, STATES, "--forcerun", "extract")
    assert done.returncode != 0
    log = job_log(work, "extract/bert", "docs")
    assert "models.bert: the tokenizer loaded from" in log and "tokenizer files" in log
    assert not (work / STATES).exists()


@pytest.mark.slow
def test_binary_text_file_is_refused(work):
    topic = Path(yaml.safe_load((work / "config.yaml").read_text())["corpora"]["docs"]["path"])
    corpus = work / "corpus"
    shutil.copytree(topic, corpus)
    (corpus / "tech" / "blob.txt").write_bytes(bytes(range(256)) * 8)
    config = yaml.safe_load((work / "config.yaml").read_text())
    config["corpora"]["docs"]["path"] = str(corpus)
    write_config(work, config)
    done = snakemake(work, "results/corpus/docs/sentences.parquet")
    assert done.returncode != 0
    assert "1 of 8 .txt files under" in job_log(work, "corpus", "docs")
    assert "are binary, not text: tech/blob.txt" in job_log(work, "corpus", "docs")
    (corpus / "tech" / "blob.txt").write_bytes("Le caf\u00e9 du coin a ferm\u00e9 ses portes hier.".encode("latin-1"))
    done = snakemake(work, "results/corpus/docs/sentences.parquet")
    assert done.returncode == 0, output(done)[-3000:]
    assert "1 of 8 files are not UTF-8, read as Latin-1: tech/blob.txt" in job_log(work, "corpus", "docs")


@pytest.mark.slow
def test_corpus_file_edits_rerun_the_corpus(work):
    corpus = work / "corpus"
    config = yaml.safe_load((work / "config.yaml").read_text())
    shutil.copytree(config["corpora"]["docs"]["path"], corpus)
    config["corpora"]["docs"]["path"] = str(corpus)
    write_config(work, config)
    assert snakemake(work, STATES).returncode == 0
    (corpus / "sport" / "000.txt").unlink()
    dry = snakemake(work, STATES, "-n")
    assert dry.returncode == 0 and "corpus" in dry.stdout and "extract" in dry.stdout


@pytest.mark.slow
def test_contexts_longer_than_the_positions_are_refused(work):
    config = yaml.safe_load((work / "config.yaml").read_text())
    (work / "long").mkdir()
    (work / "long" / "doc.txt").write_text(" ".join(["The team won the match after a late goal."] * 60))
    config["corpora"]["ctx"]["path"] = str(work / "long")
    config["corpora"]["ctx"]["sequences"].update(length=200, count=1)
    config["extraction"]["max_length"] = 256
    write_config(work, config)
    done = snakemake(work, "results/hidden/gpt/ctx/states.zarr")
    assert done.returncode != 0
    log = job_log(work, "extract/gpt", "ctx")
    assert "corpora.ctx.sequences.length=200" in log and "128 positions of model 'gpt'" in log


def test_sentences_longer_than_the_positions_are_refused(tiny_gpt2):
    """A sentence of 300 words with extraction.max_length 512 on the 128-position GPT-2 (no Snakemake run)."""
    loaded = load_model(resolve_source(str(tiny_gpt2)))
    text = " ".join(["team"] * 300)
    sentences = pl.DataFrame({"doc_id": [0], "topic": ["sport"], "sent_id": [0], "text": [text], "n_words": [300]})
    seqs = sentence_sequences(loaded.tokenizer, sentences, 512)
    spec = {"corpus": {"sequences": {"mode": "sentences"}}, "settings": {"max_length": 512}}
    with pytest.raises(InputError, match=r"extraction.max_length=512 \(model gpt\): 1 sequences .* 128 positions"):
        check_positions(loaded, seqs, "gpt", "docs", spec)


@pytest.mark.slow
@pytest.mark.parametrize("deleted", [TOKENS, STATES])
def test_deleted_intermediates_are_rebuilt(work, deleted):
    shutil.rmtree(work / deleted) if deleted == STATES else (work / deleted).unlink()
    done = snakemake(work, "-n")
    assert done.returncode == 0
    assert "Missing output files: results/hidden/bert/docs/" in done.stdout


@pytest.mark.slow
def test_temporaries_of_killed_jobs_are_removed(work):
    stale = work / "results" / "corpus" / "docs" / ".documents.parquet.tmp99999"
    stale.mkdir()
    (stale / "part").write_bytes(b"x" * 1000)
    done = snakemake(work, TOKENS, "--forcerun", "corpus")
    assert done.returncode == 0, output(done)[-3000:]
    assert not stale.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name, keep", [("config.json", 40), ("model.safetensors", 1000)])
def test_damaged_model_files_are_named(work, name, keep):
    damaged = work / "bert" / name
    damaged.write_bytes(damaged.read_bytes()[:keep])  # a truncated copy; a model file is an input: extract reruns
    done = snakemake(work, STATES)
    log = job_log(work, "extract/bert", "docs")
    assert done.returncode != 0 and f"local folder {(work / 'bert').resolve()} (damaged: {name})" in log
    assert "Hugging Face hub" not in log


ID_SETTINGS = {
    "n_points": 4096,
    "sample": "first",
    "seed": 0,
    "discard_fraction": 0.1,
    "bootstrap": 10,
    "confidence": 0.95,
    "k_neighbors": 5,
    "block_points": 1024,
}


def test_non_finite_values_are_refused_by_every_stage(work, tmp_path):
    array = open_hidden(work / STATES, mode="r+")
    block = array[1, 32:64]
    block[5, 3] = np.nan
    array[1, 32:64] = block
    done = snakemake(work, STREAM)
    assert done.returncode != 0
    expected = "layer 1 has non-finite hidden states in 1 token rows (first: [37])"
    assert expected in job_log(work, "stream/bert/docs", "0-of-1")
    selection = {"include_special": True, "exclude_first_position": False}
    with pytest.raises(ValueError, match=re.escape(expected)):  # the intrinsic-dimension job
        write_id(work / STATES, work / TOKENS, selection, ID_SETTINGS, None, tmp_path / "id.parquet")
    means = np.zeros((3, 32))
    with pytest.raises(ValueError, match=re.escape(expected)):  # anisotropy's centered pass
        stream_shard(
            work / STATES, work / TOKENS, tmp_path / "c", "0-of-1", lambda t: centered_feeds(t, selection, means)
        )


@pytest.mark.slow
def test_full_disk_names_the_output(tmp_path):
    """A 256 kB tmpfs (needs permission to mount; skipped without): the error names the file and the free space."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(Exception) as err:
            write_parquet(pl.DataFrame({"x": np.random.default_rng(0).random(200_000)}), disk / "t.parquet")
        assert f"while writing {disk / 't.parquet'}; only" in "\n".join(err.value.__notes__)
        figure = plt.figure(figsize=(40, 40))
        figure.gca().imshow(np.random.default_rng(0).random((2000, 2000)))
        with pytest.raises(Exception) as err:
            save(figure, disk / "f.png")
        assert f"while writing {disk / 'f.png'}; only" in "\n".join(err.value.__notes__)
        assert not list(disk.iterdir())  # no partial file left
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def store_bytes(path: Path) -> dict[str, bytes]:
    """Every file of a store by relative name (Snakemake's time stamp left out)."""
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != ".snakemake_timestamp"
    }


@pytest.mark.slow
def test_sigkill_during_extraction_then_rerun_is_byte_identical(extracted, work):
    """Killed as soon as the partial store exists, unlocked, rerun in another folder: the same bytes."""
    shutil.rmtree(work / STATES)
    (work / TOKENS).unlink()
    command = snakemake_command(work, "--cores", "2", STATES, TOKENS)
    run = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = work / STATES.replace("states.zarr", ".states.zarr.partial")
    deadline = time.monotonic() + 300
    while not partial.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert snakemake(work, "--unlock").returncode == 0
    done = snakemake(work, STATES, TOKENS)
    assert done.returncode == 0, output(done)[-3000:]
    assert store_bytes(work / STATES) == store_bytes(extracted / STATES)
    assert (work / TOKENS).read_bytes() == (extracted / TOKENS).read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "copied"])
def test_a_damaged_or_misplaced_partial_stops_the_merge_with_the_file_named(work, damage):
    """With --notemp and two stream shards: a truncated partial, or shard 0's partial copied over shard 1's."""
    config = yaml.safe_load((work / "config.yaml").read_text())
    config["stream"] = {"shards": 2}
    write_config(work, config)
    table = "results/summary/bert/docs/layers.parquet"
    done = snakemake(work, "--notemp", table)
    assert done.returncode == 0, output(done)[-3000:]
    parts = work / "results" / "parts" / "bert" / "docs" / "stream"
    victim = parts / "1-of-2" / "layer_001.npz"
    named = victim.relative_to(work)  # the job runs in the work folder and names paths from there
    if damage == "truncated":
        victim.write_bytes(victim.read_bytes()[:300])
        expected = f"{named}: damaged partial"
    else:
        shutil.copy(parts / "0-of-2" / "layer_001.npz", victim)
        expected = f"{named} holds layer 1 of shard 0-of-2, not layer 1 of shard 1-of-2"
    done = snakemake(work, "--notemp", table, "--forcerun", "summary_merge")  # the target first: a list follows
    assert done.returncode != 0
    log = job_log(work, "summary/bert/docs", "merge")
    assert expected in log and f"remove {named.parent} and run the workflow again" in log, log[-2000:]


def test_a_token_table_of_another_store_is_refused(work, tmp_path):
    from layergeom.io.store import read_tokens, write_tokens

    other = tmp_path / "tokens.parquet"
    write_tokens(read_tokens(work / TOKENS), other, {"config_hash": "another", "fingerprint": {}})
    selection = {"include_special": True, "exclude_first_position": False}
    with pytest.raises(StoreError, match=f"{other} is the token table of another store"):
        write_id(work / STATES, other, selection, ID_SETTINGS, None, tmp_path / "id.parquet")
    with pytest.raises(StoreError, match="token table of another store"):
        stream_shard(work / STATES, other, tmp_path / "c", "0-of-1", lambda t: [])
    assert read_tokens(work / TOKENS, open_hidden(work / STATES)).height == open_hidden(work / STATES).shape[1]

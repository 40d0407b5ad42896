"""`imagintalk` command line (DESIGN.md §7): thin wrappers that parse arguments and call the
stage functions in ``pipelines/`` — the same functions DVC and Dagster call.

Every command ends with one summary line on success, and on bad input prints one line
``error: <input>: <reason>`` to stderr and exits 1; a failed blocking audit or a refused promotion
also exits 1 (the one exit policy of pipelines/outcome.py, shared with DVC and Dagster).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from imagintalk.conventions import CORPORA, EMOTIONS
from imagintalk.train.graph import ORDER as TRAIN_ORDER
from pipelines.outcome import EXIT_OK, run_and_report

app = typer.Typer(
    help="ImaginTalk: talking-face corpora -> audited shards -> video-to-speech model -> speech.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)

def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    result, code = run_and_report(fn, *args, echo=lambda text, err: typer.echo(text, err=err), **kwargs)
    if code != EXIT_OK:
        raise typer.Exit(code)
    return result


def _params(path: Path | None, corpus: str | None = None):
    """params.yaml, with the profile of ``corpus`` applied when one is named (``--corpus``)."""
    from imagintalk.config import load_params
    from imagintalk.profiles import profile_params

    params = _run(load_params, path)
    return params if corpus is None else _run(profile_params, params, corpus)


ParamsOpt = typer.Option(None, "--params", help="params.yaml to read (default: the repo's).")
# A corpus profile (params.yaml `corpora:`, e.g. lrs3_paper) is a recipe with its own sections; the
# commands that read those sections take it by name, so a RayJob or a shell runs the same settings
# as `python -m pipelines.run STAGE --corpus NAME` does.
CorpusOpt = typer.Option(None, "--corpus", help="Corpus partition whose profile applies (params.yaml "
                         "corpora:, e.g. lrs3_paper); default: params.yaml's sections as they are.")


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Output directory of the SynthTalk corpus."),
    speakers: int = typer.Option(None, "--speakers", help="Number of speakers (default params.yaml)."),
    clips_per_speaker: int = typer.Option(None, "--clips-per-speaker", help="Clips per speaker."),
    seed: int = typer.Option(None, "--seed", help="Seed; the same seed gives byte-identical files."),
    params: Path = ParamsOpt,
) -> None:
    """Generate the SynthTalk corpus (GRID sentences, espeak-ng voices, animated faces)."""
    from pipelines.synth import synth_corpus

    _run(synth_corpus, out, speakers=speakers, clips_per_speaker=clips_per_speaker, seed=seed,
         params=_params(params))


@app.command()
def ingest(
    corpus: str = typer.Argument(..., help=f"One of: {', '.join(CORPORA)}."),
    raw_dir: Path = typer.Argument(..., help="Root of the corpus in its original layout."),
    out: Path = typer.Option(..., "--out", help="Manifest parquet to write."),
    params: Path = ParamsOpt,
) -> None:
    """Parse a corpus into the typed manifest; bad files go to the quarantine table."""
    from pipelines.ingest import ingest_corpus

    _run(ingest_corpus, corpus, raw_dir, out, params=_params(params).for_corpus(corpus))


@app.command()
def tokenizers(
    manifest: Path = typer.Argument(..., help="Manifest parquet from `imagintalk ingest`."),
    out: Path = typer.Option(None, "--out", help="Directory (default: tokenizers/ beside the manifest)."),
    corpus: str = CorpusOpt,
    params: Path = ParamsOpt,
) -> None:
    """Fit the unit tokenizer and the codec on the manifest's train split (before `shard`)."""
    from pipelines.shard import default_tokenizer_dir
    from pipelines.tokenizers import fit_codec, fit_unit_tokenizer

    prm = _params(params, corpus)
    out = out or default_tokenizer_dir(manifest)
    _run(fit_unit_tokenizer, manifest, out, prm)
    _run(fit_codec, manifest, out, prm)


@app.command()
def shard(
    manifest: Path = typer.Argument(..., help="Manifest parquet from `imagintalk ingest`."),
    out: str = typer.Option(..., "--out", help="Shard root: a local path or s3://bucket/prefix."),
    workers: int = typer.Option(None, "--workers", help="Ray workers (default params.yaml)."),
    tokenizer_dir: str = typer.Option(None, "--tokenizers",
                                      help="Fitted tokenizers (default: tokenizers/ beside the manifest)."),
    corpus: str = CorpusOpt,
    params: Path = ParamsOpt,
) -> None:
    """Preprocess clips into WebDataset shards (lip crops, identity, emotion, units, codes)."""
    from pipelines.shard import shard_manifest

    _run(shard_manifest, manifest, out, workers=workers, params=_params(params, corpus), tokenizer_dir=tokenizer_dir)


@app.command()
def audit(
    target: str = typer.Argument(..., help="A manifest parquet or a shard root."),
    report: Path = typer.Option(None, "--report", help="Directory for GX data docs and JSON result."),
    corpus: str = CorpusOpt,
    params: Path = ParamsOpt,
) -> None:
    """Run the Great Expectations suites; exit 1 when a blocking expectation fails."""
    from pipelines.audit import audit_target

    _run(audit_target, target, report, params=_params(params, corpus))


@app.command()
def train(
    stage: str = typer.Argument(..., help=" | ".join(TRAIN_ORDER)),
    shards: str = typer.Option(..., "--shards", help="Shard root (local or s3://)."),
    config: str = typer.Option(None, "--config", help="Model size: tiny | base | paper.", show_default=False),
    corpus: str = CorpusOpt,
    params: Path = ParamsOpt,
) -> None:
    """Train one model stage on Ray Train and register it in MLflow. The model size is --config,
    else the params' (or the --corpus profile's) pipeline.model_size."""
    from pipelines.train import train_stage

    prm = _params(params, corpus)
    _run(train_stage, stage, shards, config=config or prm.pipeline.model_size, params=prm)


@app.command()
def evaluate(
    shards: str = typer.Option(..., "--shards", help="Shard root with a test split."),
    model: str = typer.Option("models:/imagintalk@challenger", "--model", help="Model URI."),
    split: str = typer.Option("test", "--split", help="test (unseen speakers; tags the version for the gate) "
                                                      "or val (to choose settings on; tags nothing)."),
    corpus: str = typer.Option(None, "--corpus", help="Corpus partition whose profile applies; also the "
                               "name the gate reads its floors under (default: the test clips' corpus)."),
    params: Path = ParamsOpt,
) -> None:
    """Evaluate a model on the unseen-speaker test split; log to MLflow; write an HTML report."""
    from pipelines.evaluate import evaluate_model

    _run(evaluate_model, model, shards, params=_params(params, corpus), split=split, corpus=corpus)


@app.command()
def promote(
    model: str = typer.Option("imagintalk", "--model", help="Registered model name."),
    version: str = typer.Option(None, "--version", help="Promote this version explicitly (rollback)."),
    params: Path = ParamsOpt,
) -> None:
    """Run the promotion gate: the challenger becomes champion only if it beats the champion."""
    from pipelines.promote import promote_model

    _run(promote_model, model, version=version, params=_params(params))


@app.command()
def speak(
    video: Path = typer.Argument(..., help="Video file (mp4/mov/webm) or a directory of them."),
    out: Path = typer.Option(None, "-o", "--out", help="Output wav (or directory for batch input)."),
    dub: Path = typer.Option(None, "--dub", help="Also write the input video with the speech muxed in."),
    model: str = typer.Option("models:/imagintalk@champion", "--model", help="Model URI."),
    emotion: str = typer.Option(None, "--emotion", help="Speak with this emotion instead of the one the face "
                                f"shows: {' | '.join(EMOTIONS)}."),
    params: Path = ParamsOpt,
) -> None:
    """Generate speech from silent video."""
    from pipelines.speak import speak_video

    _run(speak_video, video, out=out, dub=dub, model=model, params=_params(params), emotion=emotion,
         owns_process=True)


@app.command()
def serve(
    model: str = typer.Option("models:/imagintalk@champion", "--model", help="Model URI."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    params: Path = ParamsOpt,
) -> None:
    """Serve POST video -> wav on Ray Serve."""
    from imagintalk.serve.app import run_server

    _run(run_server, model, host=host, port=port, params=_params(params))


models_app = typer.Typer(help="Pretrained components by name: pull into the cache, list, publish to the "
                         "storage root that every worker resolves them from.", no_args_is_help=True)
app.add_typer(models_app, name="models")
CacheOpt = typer.Option(None, "--cache", help="Cache directory (default $IMAGINTALK_PRETRAINED_CACHE, "
                        "else pretrained.cache_dir).")


@models_app.command("pull")
def models_pull(
    name: str = typer.Argument(..., help="Component name (see `imagintalk models list`)."),
    source: str = typer.Option(None, "--from", help="Take it from a local file, an http(s) URL or an s3:// "
                               "URL (a mirror) instead of the catalogue's URL."),
    cache: Path = CacheOpt,
    params: Path = ParamsOpt,
) -> None:
    """Download a component's weight file into the cache and verify its sha256."""
    from pipelines.pretrained import pull_component

    _run(pull_component, name, source, cache, params=_params(params))


@models_app.command("list")
def models_list(cache: Path = CacheOpt, params: Path = ParamsOpt) -> None:
    """Every known component: kind, whether it is cached, size, licence."""
    from pipelines.pretrained import list_components

    table = _run(list_components, cache, params=_params(params))
    for row in table.rows():
        typer.echo(row)
    typer.echo(table.footer())


@models_app.command("publish")
def models_publish(
    name: str = typer.Argument(..., help="Component name (cached: `imagintalk models pull NAME` first)."),
    to: str = typer.Option(None, "--to", help="Storage root, local or s3:// (default $IMAGINTALK_STORAGE_ROOT, "
                           "else storage.root)."),
    cache: Path = CacheOpt,
    params: Path = ParamsOpt,
) -> None:
    """Copy a cached weight file to STORAGE_ROOT/_pretrained/NAME/, where stages on workers find it."""
    from pipelines.pretrained import publish_component

    _run(publish_component, name, to, cache, params=_params(params))


@app.command("dvc-yaml")
def dvc_yaml(out: Path = typer.Option(Path("dvc.yaml"), "--out")) -> None:
    """Regenerate dvc.yaml from the stage registry in pipelines/."""
    from pipelines.registry import write_dvc_yaml

    _run(write_dvc_yaml, out)


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="imagintalk")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

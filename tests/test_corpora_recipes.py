"""Each corpus recipe on a tiny tree in that corpus's real layout, with real media files:
speaker, split, emotion, intensity, transcript and audio pairing as the corpus names them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from test_corpora_media import CLIP_S, make_flv, make_m4a, make_mp4, make_mpg, make_wav

from imagintalk.config import Params
from imagintalk.corpora.cards import list_cards, load_card
from imagintalk.corpora.manifest import ManifestRow, read_manifest, read_quarantine
from imagintalk.corpora.registry import SCANNERS
from imagintalk.emotions import EMOTIONS, normalize_emotion
from imagintalk.media import read_video
from pipelines.ingest import IngestSummary, ingest_corpus


def run_ingest(corpus: str, root: Path, tmp_path: Path, **ingest_overrides):
    params = Params()   # code defaults: independent of edits to the repo's params.yaml
    if ingest_overrides:
        params = params.model_copy(update={"ingest": params.ingest.model_copy(update=ingest_overrides)})
    summary = ingest_corpus(corpus, root, tmp_path / f"{corpus}.parquet", params=params)
    rows = {r.clip_id: r for r in read_manifest(summary.manifest_path)}
    return summary, rows, read_quarantine(summary.manifest_path)


def reasons(quarantine) -> dict[str, str]:
    return {Path(q.path).name: q.reason for q in quarantine}


def assert_speaker_disjoint(rows: dict[str, ManifestRow]) -> None:
    split_of: dict[str, set[str]] = {}
    for r in rows.values():
        split_of.setdefault(r.speaker, set()).add(r.split)
    assert all(len(s) == 1 for s in split_of.values()), split_of


# --------------------------------------------------------------------------- synthtalk
def build_synthtalk(root: Path) -> None:
    clips = [("train", "spk00", "00000", "happy", 0.8), ("train", "spk00", "00001", "sad", 0.5),
             ("val", "spk01", "00000", "angry", 1.0), ("test", "spk02", "00000", "neutral", 0.0)]
    root.mkdir(parents=True)
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["split", "speaker", "clip", "transcript", "emotion", "intensity", "seed", "voice",
                    "identity", "pitch", "rate"])
        for i, (split, spk, clip, emo, inten) in enumerate(clips):
            words = f"SET BLUE AT A {['ONE', 'TWO', 'THREE', 'FOUR'][i]} NOW"
            make_mp4(root / split / spk / f"{clip}.mp4", n=8 + 2 * i, seed=i)
            (root / split / spk / f"{clip}.txt").write_text(f"Text:  {words}\nConf:  1\n")
            w.writerow([split, spk, clip, words, emo, inten, i, "en-us+m1", "astronaut", 50, 170])


def test_synthtalk_tree_gives_one_row_per_clip_with_metadata_labels(tmp_path):
    build_synthtalk(tmp_path / "st")
    summary, rows, quarantine = run_ingest("synthtalk", tmp_path / "st", tmp_path)
    assert quarantine == [] and summary.n_clips == 4 and summary.splits == {"train": 2, "val": 1, "test": 1}
    r = rows["synthtalk/spk00/00001"]
    assert (r.split, r.emotion, r.intensity, r.transcript) == ("train", "sad", 0.5, "SET BLUE AT A TWO NOW")
    assert r.audio_path is None and r.sample_rate == 16000 and r.fps == 25
    assert Path(r.video_path).is_absolute() and len(r.sha256) == 64
    assert rows["synthtalk/spk02/00000"].split == "test"
    assert_speaker_disjoint(rows)


def test_manifest_durations_match_the_decoded_media(tmp_path):
    build_synthtalk(tmp_path / "st")
    _, rows, _ = run_ingest("synthtalk", tmp_path / "st", tmp_path)
    for r in rows.values():
        assert r.duration_s == pytest.approx(len(read_video(r.video_path).frames) / 25, abs=1e-6)
    assert sorted(round(r.duration_s, 2) for r in rows.values()) == [0.32, 0.40, 0.48, 0.56]


def test_same_tree_gives_identical_manifest_bytes(tmp_path):
    build_synthtalk(tmp_path / "st")
    a, _, _ = run_ingest("synthtalk", tmp_path / "st", tmp_path / "a", workers=1)
    b, _, _ = run_ingest("synthtalk", tmp_path / "st", tmp_path / "b", workers=4)
    assert a.manifest_path.read_bytes() == b.manifest_path.read_bytes()


# --------------------------------------------------------------------------- grid
def test_grid_pairs_video_with_separate_audio_by_utterance_id_across_layouts(tmp_path):
    root = tmp_path / "GRID"
    make_mpg(root / "s1" / "bbaf2n.mpg")                          # Zenodo / homepage video layout
    make_wav(root / "audio_25k" / "s1" / "bbaf2n.wav", CLIP_S, 25000)
    (root / "alignments" / "s1").mkdir(parents=True)
    (root / "alignments" / "s1" / "bbaf2n.align").write_text(
        "0 23750 sil\n23750 29500 bin\n29500 34000 blue\n34000 35500 at\n35500 41000 f\n"
        "41000 47250 two\n47250 53000 now\n53000 74500 sil\n")
    make_mpg(root / "s3" / "video" / "mpg_6000" / "lwae8n.mpg")   # LipNet layout, no alignment
    make_wav(root / "s3" / "audio" / "lwae8n.wav", CLIP_S, 25000)
    make_wav(root / "audio_25k" / "s3" / "pgwr6p.wav", CLIP_S, 25000)   # audio whose video is missing
    make_mpg(root / "s3" / "notes.mpg")                            # not a GRID utterance id
    summary, rows, quarantine = run_ingest("grid", root, tmp_path)
    a, b = rows["grid/s1/bbaf2n"], rows["grid/s3/lwae8n"]
    assert a.transcript == "bin blue at f two now" and a.split == "test"   # unseen-speaker protocol
    assert Path(a.audio_path).name == "bbaf2n.wav" and "audio_25k" in a.audio_path and a.sample_rate == 25000
    assert b.transcript == "lay white at e eight now"                       # decoded from the id
    assert Path(b.audio_path).parent.name == "audio" and b.split in ("train", "val")
    assert a.duration_s == pytest.approx(CLIP_S)
    r = reasons(quarantine)
    assert "without a matching video" in r["pgwr6p.wav"] and "unknown layout" in r["notes.mpg"]
    assert summary.n_clips == 2 and summary.n_quarantined == 2


# --------------------------------------------------------------------------- lrs2
def test_lrs2_splits_come_from_the_official_filelists(tmp_path):
    root = tmp_path / "lrs2"
    for sub, prog, clip, words in [("main", "5535415699068794046", "00001", "WHEN YOU'RE COOKING"),
                                   ("main", "6330311066473698535", "00011", "IT IS TRUE"),
                                   ("main", "6360870506336586339", "00002", "HELLO THERE"),
                                   ("pretrain", "5535415699068794046", "00001", "A LONG ONE"),
                                   ("main", "6400000000000000000", "00003", "NOT LISTED")]:
        make_mp4(root / "mvlrs_v1" / sub / prog / f"{clip}.mp4")
        (root / "mvlrs_v1" / sub / prog / f"{clip}.txt").write_text(f"Text:  {words}\nConf:  3\n")
    (root / "train.txt").write_text("5535415699068794046/00001\n")
    (root / "val.txt").write_text("6360870506336586339/00002\n")
    (root / "test.txt").write_text("6330311066473698535/00011 NF\n")
    (root / "pretrain.txt").write_text("5535415699068794046/00001\n")
    _, rows, quarantine = run_ingest("lrs2", root, tmp_path)
    assert rows["lrs2/5535415699068794046/main_00001"].split == "train"
    assert rows["lrs2/5535415699068794046/pretrain_00001"].transcript == "A LONG ONE"
    assert rows["lrs2/6330311066473698535/main_00011"].split == "test"
    assert rows["lrs2/6360870506336586339/main_00002"].split == "val"
    assert rows["lrs2/5535415699068794046/main_00001"].transcript == "WHEN YOU'RE COOKING"
    assert "in none of" in reasons(quarantine)["00003.mp4"] and len(rows) == 4


# --------------------------------------------------------------------------- lrs3
def test_lrs3_folders_map_to_splits_and_val_is_carved_from_train_speakers(tmp_path):
    root = tmp_path / "lrs3"
    speakers = [f"spk{i:02d}xxxxxxx" for i in range(12)]
    for spk in speakers:
        for sub in ("pretrain", "trainval"):
            make_mp4(root / sub / spk / "00001.mp4")
            (root / sub / spk / "00001.txt").write_text("Text:  THANK YOU\nConf:  4\n")
    make_mp4(root / "test" / "0Fi83BHQsMA" / "00002.mp4")
    _, rows, quarantine = run_ingest("lrs3", root, tmp_path, val_fraction=0.5)
    assert quarantine == [] and len(rows) == 25
    assert rows["lrs3/0Fi83BHQsMA/test_00002"].split == "test"
    assert rows["lrs3/spk00xxxxxxx/trainval_00001"].transcript == "THANK YOU"
    splits = {r.split for r in rows.values() if r.speaker != "0Fi83BHQsMA"}
    assert splits == {"train", "val"}    # 12 speakers at a 0.5 share: both sides non-empty
    assert_speaker_disjoint(rows)        # pretrain and trainval clips of a speaker stay together


# --------------------------------------------------------------------------- voxceleb2
def test_voxceleb2_has_speakers_from_ids_and_no_labels(tmp_path):
    root = tmp_path / "vox2"
    make_mp4(root / "vox2_dev_mp4" / "dev" / "mp4" / "id00012" / "21Uxsk56VDQ" / "00001.mp4")
    make_mp4(root / "vox2_test_mp4" / "test" / "mp4" / "id00017" / "01dfn2spqyE" / "00001.mp4")
    make_m4a(root / "dev" / "aac" / "id00012" / "21Uxsk56VDQ" / "00001.m4a")   # audio-only release
    summary, rows, quarantine = run_ingest("voxceleb2", root, tmp_path)
    assert quarantine == [] and summary.n_skipped == 1
    dev = rows["voxceleb2/id00012/21Uxsk56VDQ_00001"]
    assert dev.split in ("train", "val") and dev.transcript is None and dev.emotion is None
    assert rows["voxceleb2/id00017/01dfn2spqyE_00001"].split == "test"


# --------------------------------------------------------------------------- cremad
def test_cremad_pairs_flash_video_with_wav_and_reads_labels_from_the_name(tmp_path):
    root = tmp_path / "CREMA-D"
    make_flv(root / "VideoFlash" / "1001_DFA_ANG_XX.flv")
    make_wav(root / "AudioWAV" / "1001_DFA_ANG_XX.wav", CLIP_S, 16000)
    make_flv(root / "VideoFlash" / "1002_IEO_HAP_HI.flv")
    make_mp4(root / "VideoMP4" / "1002_IEO_HAP_HI.mp4", audio=False)   # converted copy: preferred
    make_wav(root / "AudioWAV" / "1002_IEO_HAP_HI.wav", CLIP_S, 16000)
    make_mp4(root / "VideoMP4" / "1003_TSI_FEA_LO.mp4")                  # no wav: its own audio track
    make_mp4(root / "VideoMP4" / "1004_XYZ_SAD_MD.mp4")                  # unknown sentence code
    summary, rows, quarantine = run_ingest("cremad", root, tmp_path)
    a = rows["cremad/1001/1001_DFA_ANG_XX"]
    assert (a.emotion, a.intensity, a.transcript) == ("angry", None, "Don't forget a jacket")
    assert a.video_path.endswith(".flv") and a.audio_path.endswith("1001_DFA_ANG_XX.wav")
    b = rows["cremad/1002/1002_IEO_HAP_HI"]
    assert (b.emotion, b.intensity, b.transcript) == ("happy", 1.0, "It's eleven o'clock")
    assert b.video_path.endswith(".mp4") and summary.n_skipped == 1
    c = rows["cremad/1003/1003_TSI_FEA_LO"]
    assert (c.emotion, c.intensity, c.audio_path) == ("fearful", 0.33, None)
    assert "unknown CREMA-D sentence" in reasons(quarantine)["1004_XYZ_SAD_MD.mp4"]


# --------------------------------------------------------------------------- mead
def test_mead_pairs_front_video_with_m4a_and_maps_emotion_and_level(tmp_path):
    root = tmp_path / "MEAD"
    for emo, level in [("fear", 3), ("contempt", 1)]:
        make_mp4(root / "M003" / "video" / "front" / emo / f"level_{level}" / "001.mp4", audio=False)
        make_m4a(root / "M003" / "audio" / emo / f"level_{level}" / "001.m4a")
    make_mp4(root / "M003" / "video" / "left_30" / "fear" / "level_3" / "001.mp4", audio=False)
    make_mp4(root / "W009" / "video" / "front" / "neutral" / "level_1" / "002.mp4")
    summary, rows, quarantine = run_ingest("mead", root, tmp_path)
    f = rows["mead/M003/fear_level3_001"]
    assert (f.emotion, f.intensity) == ("fearful", 1.0) and f.audio_path.endswith("fear/level_3/001.m4a")
    assert rows["mead/M003/contempt_level1_001"].intensity == pytest.approx(1 / 3, abs=1e-3)
    assert rows["mead/W009/neutral_level1_002"].audio_path is None     # falls back on its own track
    assert quarantine == [] and summary.n_skipped == 1 and len(rows) == 3


# --------------------------------------------------------------------------- ravdess
def test_ravdess_keeps_full_av_speech_and_decodes_the_seven_fields(tmp_path):
    root = tmp_path / "RAVDESS"
    make_mp4(root / "Actor_01" / "01-01-06-02-02-01-01.mp4")     # full-AV speech fearful strong
    make_mp4(root / "Actor_01" / "01-01-01-01-01-02-01.mp4")     # neutral normal
    make_mp4(root / "Actor_02" / "01-01-02-01-01-01-02.mp4")     # calm
    make_mp4(root / "Actor_01" / "02-01-06-02-02-01-01.mp4", audio=False)   # video-only: skipped
    make_mp4(root / "Actor_02" / "01-02-03-01-01-01-02.mp4")     # song: skipped
    make_mp4(root / "Actor_02" / "01-01-03-01-01-01-05.mp4")     # actor field disagrees with folder
    summary, rows, quarantine = run_ingest("ravdess", root, tmp_path)
    a = rows["ravdess/Actor_01/01-01-06-02-02-01-01"]
    assert (a.emotion, a.intensity, a.transcript) == ("fearful", 1.0, "Dogs are sitting by the door")
    b = rows["ravdess/Actor_01/01-01-01-01-01-02-01"]
    assert (b.emotion, b.intensity, b.transcript) == ("neutral", 0.5, "Kids are talking by the door")
    assert rows["ravdess/Actor_02/01-01-02-01-01-01-02"].emotion == "calm"
    assert summary.n_skipped == 2 and "Actor_02" in reasons(quarantine)["01-01-03-01-01-01-05.mp4"]
    assert_speaker_disjoint(rows)


# --------------------------------------------------------------------------- splits and cards
def test_hash_splits_follow_the_fractions_and_are_stable(tmp_path):
    root = tmp_path / "RAVDESS"
    for actor in range(1, 7):
        make_mp4(root / f"Actor_{actor:02d}" / f"01-01-01-01-01-01-{actor:02d}.mp4")
    _, all_test, _ = run_ingest("ravdess", root, tmp_path / "a", val_fraction=0.0, test_fraction=1.0)
    _, all_train, _ = run_ingest("ravdess", root, tmp_path / "b", val_fraction=0.0, test_fraction=0.0)
    assert {r.split for r in all_test.values()} == {"test"}
    assert {r.split for r in all_train.values()} == {"train"}
    _, once, _ = run_ingest("ravdess", root, tmp_path / "c", val_fraction=0.3, test_fraction=0.3)
    _, twice, _ = run_ingest("ravdess", root, tmp_path / "d", val_fraction=0.3, test_fraction=0.3)
    assert {k: r.split for k, r in once.items()} == {k: r.split for k, r in twice.items()}


def test_every_corpus_has_a_card_and_a_recipe_and_its_labels_map_into_the_vocabulary():
    assert list_cards() == sorted(SCANNERS)
    for name in list_cards():
        card = load_card(name)
        assert card.name == name and card.licence and card.homepage and card.layout
        assert all(normalize_emotion(v) in EMOTIONS for v in card.labels.emotion_map.values())
        assert all(v is None or 0.0 < v <= 1.0 for v in card.labels.intensity_map.values())


def test_summary_line_counts_clips_splits_and_quarantine(tmp_path):
    s = IngestSummary("grid", Path("m.parquet"), Path("m.quarantine.parquet"), 3, 1, 2, 2, 0.5,
                      {"train": 2, "test": 1})
    assert s.summary_line() == ("ingest grid: 3 clips (train 2 / val 0 / test 1), 2 speakers, 0.500 h; "
                                "1 quarantined, 2 skipped -> m.parquet")

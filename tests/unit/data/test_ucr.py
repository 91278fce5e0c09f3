"""The one UCR parser (nnrds.data.ucr) and the sequence datasets built on it (nnrds.data.sequences)."""

import numpy as np
import pytest

from nnrds.data import sequences, ucr

TEXT = "1 0.5 -1.25 2\n3 1.5 0.25 -2\n2 0 0 1\n"


def test_parse_ucr_label_first_then_series():
    df = ucr.parse_ucr(TEXT, "toy")
    assert list(df.columns) == ["label", "x000", "x001", "x002"]
    assert df["label"].tolist() == [1, 3, 2]
    assert df.loc[1, ["x000", "x001", "x002"]].tolist() == [1.5, 0.25, -2.0]


def test_parse_ucr_rejects_other_text():
    with pytest.raises(ValueError, match="toy.txt is not a UCR text file"):
        ucr.parse_ucr("label,x0\n1,2\n", "toy.txt")


def test_read_ucr_text_and_acquired_csv_agree(tmp_path):
    """The archive's text and the CSV the acquisition step writes (float_format %.10g) give the same arrays;
    classes 1..K become 0..K-1."""
    (tmp_path / "train.txt").write_text(TEXT)
    ucr.parse_ucr(TEXT, "toy").to_csv(tmp_path / "train.csv", index=False, float_format="%.10g", lineterminator="\n")
    X1, y1 = ucr.read_ucr(tmp_path / "train.txt")
    X2, y2 = ucr.read_ucr(tmp_path / "train.csv")
    assert X1.dtype == np.float64 and X1.shape == (3, 3)
    np.testing.assert_array_equal(X1, X2)
    assert y1.tolist() == y2.tolist() == [0, 2, 1]


def test_read_ucr_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ECG file .*nope.csv does not exist"):
        ucr.read_ucr(tmp_path / "nope.csv", "ECG file")


def test_official_test_is_found_next_to_the_training_file(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("label,x000\n1,0\n")
    assert ucr.official_test(train) is None
    (tmp_path / "test.csv").write_text("label,x000\n1,0\n")
    assert ucr.official_test(train) == tmp_path / "test.csv"
    assert ucr.official_test(tmp_path / "test.csv") is None  # a file is never its own test split


def _ecg_like(path, per_class=(20, 10, 10, 5, 5), length=7, seed=0):
    rng = np.random.default_rng(seed)
    lines = [
        " ".join([str(k + 1)] + [f"{v:.3f}" for v in rng.normal(size=length)])
        for k, n in enumerate(per_class)
        for _ in range(n)
    ]
    path.write_text("\n".join(lines) + "\n")


SPEC = {"test_fraction": 0.2, "permutation_seed": 0, "max_train": None, "max_test": None}


def test_ecg_is_split_stratified_without_an_official_test_split(tmp_path):
    _ecg_like(tmp_path / "ECG5000_TRAIN.txt")
    d = sequences.load_dataset("ecg5000", {**SPEC, "ecg_path": None}, {"mirror": str(tmp_path)}, seed=0)
    assert d.split == "stratified" and d.seq_len == 7 and d.n_classes == 5
    assert np.bincount(d.y_test).tolist() == [4, 2, 2, 1, 1]  # 20% of every class
    assert (d.lo, d.hi) == (d.X_train.min(), d.X_train.max())


def test_ecg_uses_the_official_split_when_present(tmp_path):
    _ecg_like(tmp_path / "train.txt")
    _ecg_like(tmp_path / "ECG5000_TEST.txt", per_class=(3, 3, 3, 3, 3), seed=1)
    d = sequences.load_dataset("ecg5000", {**SPEC, "ecg_path": str(tmp_path / "train.txt")}, seed=0)
    assert d.split == "official" and len(d.y_train) == 50 and len(d.y_test) == 15


def test_ecg_needs_a_path_or_a_mirror():
    with pytest.raises(ValueError, match="noisy_rnn.ecg_path.*data.mirror"):
        sequences.load_dataset("ecg5000", {**SPEC, "ecg_path": None}, {"mirror": None})
    with pytest.raises(ValueError, match="unknown sequence dataset 'mnist'"):
        sequences.load_dataset("mnist", SPEC)


TS = """#A comment
@problemName Toy
@univariate true
@classLabel true 1 2
@data
0.5,-1.25,2:1
1.5,0.25,-2:2
"""


def test_parse_ts_matches_parse_ucr():
    """The .ts format (aeon / sktime) gives the same table as the UCR text format of the same series."""
    a = ucr.parse_ts(TS, "toy.ts")
    b = ucr.parse_ucr("1 0.5 -1.25 2\n2 1.5 0.25 -2\n", "toy")
    assert list(a.columns) == list(b.columns) and a.equals(b)


@pytest.mark.parametrize(
    "text,match",
    [
        ("0.5,1:1\n", "data before the @data header"),
        ("@data\n0.5,1\n", "expected one univariate series"),
        ("@data\n0.5,1:1\n0.5:1\n", "no equal-length series"),
        ("@data\n0.5,x:1\n", "line 2"),
    ],
)
def test_parse_ts_rejects_malformed_files(text, match):
    with pytest.raises(ValueError, match=match):
        ucr.parse_ts(text, "bad.ts")


def test_italy_power_pool_keeps_the_official_split(tmp_path):
    ucr.parse_ts(TS, "t").to_csv(tmp_path / "train.csv", index=False)
    ucr.parse_ts(TS.replace("0.5,-1.25,2:1", "9,9,9:1"), "t").to_csv(tmp_path / "test.csv", index=False)
    p = sequences.load_pool("italy_power", {"italy_path": str(tmp_path / "train.csv")})
    assert p.split == "official" and len(p.y) == 2 and len(p.y_test) == 2 and p.X_all[2, 0] == 9
    (tmp_path / "test.csv").unlink()
    with pytest.raises(ValueError, match="official test split"):
        sequences.load_pool("italy_power", {"italy_path": str(tmp_path / "train.csv")})

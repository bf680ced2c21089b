"""A model file must match its id wherever it is read (issue 23, item 6): a teacher's model.pt copied into a
student's folder stops md-timing, max-atoms, rdf-md and label with one message naming the file."""
import json
import shutil

import pytest

from tsmlip.cli import main as cli
from tsmlip.ids import Arch
from tsmlip.core.model import ModelFileError, build_model, check_model_id, save_model

STUDENT = "student/w6-s6-l1/seed1"
TEACHER = "teacher/w12-s8-l2/seed0"


@pytest.fixture(scope="module")
def swapped(tiny_cfg, tmp_path_factory):
    """results/models/<student>/model.pt holding the teacher's model."""
    root = tmp_path_factory.mktemp("swap") / "models"
    teacher = root / TEACHER / "model.pt"
    teacher.parent.mkdir(parents=True)
    save_model(build_model(Arch(12, 8, 2), tiny_cfg["network"], seed=0), teacher, model_id=TEACHER)
    student = root / STUDENT / "model.pt"
    student.parent.mkdir(parents=True)
    shutil.copy(teacher, student)
    return teacher, student


def test_check_model_id(swapped):
    teacher, student = swapped
    assert check_model_id(teacher, TEACHER, kind="teacher")["arch"]["width"] == 12
    check_model_id(teacher, f"{TEACHER} (seed 1201)")  # a note after the id (the RDF noise-seed run)
    with pytest.raises(ModelFileError, match=r"student/w6-s6-l1/seed1/model.pt does not match .*architecture "
                                             r"is w12-s8-l2, not w6-s6-l1.*trained as teacher/w12-s8-l2/seed0"):
        check_model_id(student, STUDENT)
    with pytest.raises(ModelFileError, match="it is a teacher model, not a student"):
        check_model_id(teacher, None, kind="student")


@pytest.mark.parametrize("step", ["md-timing", "max-atoms", "rdf-md", "label"])
def test_every_reader_refuses_a_swapped_model(swapped, tiny_cfg, tiny_data, tmp_path, capsys, step):
    teacher, student = swapped
    ds, _, _ = tiny_data
    md, rdf = json.dumps({"md": tiny_cfg["md"]}), json.dumps({"rdf": tiny_cfg["rdf"]})
    argv = {
        "md-timing": ["--model", str(student), "--engine", "ase", "--model-id", STUDENT, "--config-json", md,
                      "--out", str(tmp_path / "t.json")],
        "max-atoms": ["--model", str(student), "--model-id", STUDENT, "--config-json", md,
                      "--out", str(tmp_path / "m.json")],
        "rdf-md": ["--model", str(student), "--model-id", STUDENT, "--config-json", rdf,
                   "--out-csv", str(tmp_path / "r.csv"), "--out-json", str(tmp_path / "r.json")],
        # a student's file given as the teacher
        "label": ["--teacher", str(student), "--teacher-ids", STUDENT, "--dataset", str(ds),
                  "--out", str(tmp_path / "l.npz"),
                  "--config-json", json.dumps({"labels": tiny_cfg["labels"]})],
    }[step]
    assert cli([step, *argv]) == 1
    err = capsys.readouterr().err
    assert f"tsmlip {step}: error: " in err and str(student) in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("step", ["label", "synthesize"])
def test_teacher_ids_come_with_the_teachers(swapped, tiny_cfg, tmp_path, capsys, step):
    """label and synthesize take each teacher's id from the rule (--teacher-ids, same order), not its path."""
    teacher, _ = swapped
    argv = {"label": ["--dataset", "d.npz", "--out", str(tmp_path / "l.npz")],
            "synthesize": ["--dataset", "d.npz", "--split", "s.npz", "--labels", "l.npz",
                           "--out-dir", str(tmp_path / "syn")]}[step]
    cfg = json.dumps({k: tiny_cfg[k] for k in ("labels", "synthetic", "data", "foundation", "rdf")})
    with pytest.raises(SystemExit) as stop:
        cli([step, "--config-json", cfg, "--teacher", str(teacher), str(teacher), "--teacher-ids", TEACHER, *argv])
    assert stop.value.code == 2 and "--teacher and --teacher-ids need the same number" in capsys.readouterr().err
    assert cli([step, "--config-json", cfg, "--teacher", str(teacher), "--teacher-ids", STUDENT, *argv]) == 1
    assert f"{teacher} does not match" in capsys.readouterr().err and not list(tmp_path.iterdir())

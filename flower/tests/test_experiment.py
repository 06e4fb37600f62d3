import json
import re
from pathlib import Path

import pytest

from conftest import REPO
from pfedprompt_server import __version__, experiment
from pfedprompt_server.cell import CellSpec
from pfedprompt_server.failures import FederationError


def test_defaults_are_those_of_config_ts():
    source = (REPO / "src" / "experiment" / "config.ts").read_text()
    default = lambda field: json.loads(re.search(rf"\n  {field}: z\..*\.default\((\[.*?\]|'[^']*')\)", source).group(1).replace("'", '"'))
    assert default("methods") == experiment.DEFAULT_METHODS
    assert default("seeds") == experiment.DEFAULT_SEEDS
    assert default("name") == experiment.DEFAULT_NAME
    assert re.search(r"shots: z\.array\(positiveInt\)\.min\(1\)\.default\(\[16\]\)", source) and experiment.DEFAULT_SHOTS == [16]


def test_grid_runs_shots_then_methods_then_seeds():
    config = {"data": {"shots": [2, 16]}, "methods": ["promptfl", "pfedprompt"], "seeds": [1, 2]}
    assert experiment.cells(config)[:5] == [
        CellSpec("promptfl", 1, 2), CellSpec("promptfl", 2, 2), CellSpec("pfedprompt", 1, 2), CellSpec("pfedprompt", 2, 2),
        CellSpec("promptfl", 1, 16),
    ]
    assert len(experiment.cells({})) == 8 * 3


def test_one_dataset_per_run():
    with pytest.raises(FederationError, match="one \\(the nodes hold it\\)"):
        experiment.cells({"data": {"datasets": ["dtd", "caltech101"]}})


def test_yaml_and_json_configs_and_where_results_go(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text("name: tiny\nmethods: [promptfl]\noutput: out/here\n")
    (tmp_path / "b.json").write_text('{"name": "tiny"}')
    a = experiment.load_config(tmp_path / "a.yaml")
    b = experiment.load_config(tmp_path / "b.json")
    assert a["methods"] == ["promptfl"] and b == {"name": "tiny"}
    assert experiment.output_dir(a, tmp_path / "a.yaml") == tmp_path / "out" / "here"
    assert experiment.output_dir(a, tmp_path / "a.yaml", str(tmp_path / "x")) == tmp_path / "x"
    monkeypatch.chdir(tmp_path)
    assert experiment.output_dir(b, tmp_path / "b.json") == tmp_path / "runs" / "tiny"
    with pytest.raises(FederationError, match="cannot read"):
        experiment.load_config(tmp_path / "missing.yaml")


def test_versions_agree_with_package_json():
    package = json.loads((REPO / "package.json").read_text())
    pyproject = (REPO / "flower" / "pyproject.toml").read_text()
    assert __version__ == package["version"]
    assert f'version = "{package["version"]}"' in pyproject


def test_the_app_bundle_is_valid_for_flower():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    from flwr.common.config import validate_config

    config = tomllib.loads((REPO / "flower" / "pyproject.toml").read_text())
    ok, errors, _ = validate_config(config, check_module=True, project_dir=REPO / "flower")
    assert ok, errors
    assert 'dependencies = ["flwr==1.42.0"' in (REPO / "flower" / "pyproject.toml").read_text()


def test_the_placeholder_client_app_refuses_clearly():
    from flwr.app import Context, Message, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from pfedprompt_server.client_app import app

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    message = Message(RecordDict(), dst_node_id=1, message_type="train")
    with pytest.raises(RuntimeError, match="pfedprompt node"):
        app(message, Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={}))

"""README.md's snippets run as written: the `mlflow.models.evaluate(..., evaluators=["advisor"])`
example (executed verbatim, given the `model_uri` it says to bring) and the PostgreSQL tracking
server's backend URI (the form the tests' server fixture uses, served by a real `mlflow server`).
"""

from __future__ import annotations

import json
import re
import textwrap
import time
import warnings
from pathlib import Path

from tests.pg_server import Postgres, create_database, mlflow_on, postgres  # noqa: F401 - the fixture

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
LLAMA_CONFIG = {"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 22, "num_attention_heads": 32,
                "num_key_value_heads": 4, "intermediate_size": 5632, "vocab_size": 32000,
                "max_position_embeddings": 2048, "architectures": ["LlamaForCausalLM"]}


def python_block_after(marker: str) -> str:
    """The first ```python block after `marker` in README.md, dedented as a reader would paste it."""
    start = README.index(marker)
    m = re.compile(r"```python\n(.*?)\n\s*```", re.S).search(README, start)
    assert m, f"no python block after {marker!r}"
    return textwrap.dedent(m.group(1))


def readme_server_command() -> str:
    [line] = [ln.strip("`") for ln in README.splitlines() if ln.startswith("`mlflow server --backend-store-uri")]
    return line


def test_readme_evaluate_example_runs_as_written(tmp_path, monkeypatch, capsys):
    import mlflow

    code = python_block_after("`mlflow.model_evaluator` `advisor`")
    assert "mlflow.models.evaluate(model_uri, data" in code and 'evaluators=["advisor"]' in code
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("ADVISOR_RUN_CONTEXT", "0")
    hf = tmp_path / "hf-model"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps(LLAMA_CONFIG))
    with warnings.catch_warnings():   # MLflow nags about type hints on predict
        warnings.simplefilter("ignore", UserWarning)

        class Summarizer(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input, params=None):
                time.sleep(0.001)
                return [str(t)[:20] for t in model_input["text"]]

        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(name="model", python_model=Summarizer(), artifacts={"hf": str(hf)},
                                           pip_requirements=[])
    namespace = {"model_uri": info.model_uri}   # what the README says to bring
    exec(compile(code, "README.md", "exec"), namespace)
    p95, fits = capsys.readouterr().out.split()
    assert float(p95) >= 1.0 and float(fits) == 1.0            # a 1.1B llama fits an A10G
    assert namespace["result"].metrics["advisor/rows"] == 2


def test_readme_postgres_uri_is_the_fixture_form_and_names_the_shipped_driver():
    uri = readme_server_command().split("--backend-store-uri ", 1)[1].split()[0]
    scheme = uri.split("://", 1)[0]
    assert scheme == "postgresql+psycopg2", uri
    assert Postgres(Path("."), 5432, Path("."), "u").uri("mlflow").split("://", 1)[0] == scheme
    assert "psycopg2-binary" in README[README.index("Many machines"):][:800]


def test_readme_postgres_uri_serves_mlflow(postgres, tmp_path):  # noqa: F811 - the fixture
    """The README's backend URI, with this test's database host, behind a real `mlflow server`."""
    from mlflow import MlflowClient

    template = readme_server_command().split("--backend-store-uri ", 1)[1].split()[0]
    create_database(postgres, "mlflow")
    uri = template.replace("USER@DBHOST", f"{postgres.user}@127.0.0.1:{postgres.port}")
    with mlflow_on(uri, tmp_path / "srv", workers=1) as server:
        client = MlflowClient(tracking_uri=server.uri)
        run = client.create_run(client.create_experiment("readme-postgres"))
        client.log_metric(run.info.run_id, "m", 1.0)
        assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}

"""Deployment target `advisor-gate:/<real target>`: runs `advisor check` before delegating.

    client = mlflow.deployments.get_deploy_client("advisor-gate:/sagemaker")
    client.create_deployment("summarizer", "models:/summarizer/3",
                             config={"advisor.policy": "policy.yaml", ...real target's keys...})

create_deployment / update_deployment (with a model) call advisor.check.engine.check(policy=...,
model_uri=<models:/ URI> or model_path=config["advisor.model_path"], targets=...) and refuse
with an MlflowException when it fails, or when the check cannot run at all (fail closed).
Keys starting with "advisor." are removed from the config handed to the real target; every other
call is passed straight through.
"""

from __future__ import annotations

SCHEME = "advisor-gate"
_CLASS = "AdvisorGateClient"


def target_help():
    return (
        "advisor-gate:/<target> gates a real MLflow deployment target behind model-advisor's "
        "pre-deployment check.\nConfig keys: advisor.policy (policy YAML path), advisor.targets "
        "(comma-separated hardware target ids), advisor.task, advisor.model_path (a config.json, for "
        "non-registry model URIs); all other keys go to <target>.\n"
        "A failing check refuses create_deployment/update_deployment.")


def split_config(config: dict | None) -> tuple[dict, dict]:
    """(advisor keys without the prefix, the rest for the real target)."""
    ours, theirs = {}, {}
    for key, value in (config or {}).items():
        if str(key).startswith("advisor."):
            ours[str(key)[len("advisor."):]] = value
        else:
            theirs[key] = value
    return ours, theirs


def _model_args(model_uri: str, ours: dict) -> dict:
    """The check resolves registry URIs itself; other URIs (runs:/, s3://) need the policy's model
    or advisor.model_path (a local config.json) to say what is being deployed."""
    if ours.get("model_path"):
        return {"model_path": ours["model_path"]}
    if str(model_uri).startswith("models:/"):
        return {"model_uri": model_uri}
    return {}


def gate(model_uri: str, ours: dict) -> None:
    """Raise MlflowException unless the advisor check passes for this model."""
    from mlflow.exceptions import MlflowException

    try:
        from advisor.check.engine import check
    except ImportError as exc:
        raise MlflowException(f"advisor-gate: the check engine is not available ({exc}); refusing to deploy") from exc
    targets = [t.strip() for t in str(ours.get("targets") or "").split(",") if t.strip()]
    try:
        report = check(policy=ours.get("policy"), targets=targets, task=ours.get("task"),
                       **_model_args(model_uri, ours))
    except Exception as exc:  # a check that cannot run is not a pass
        raise MlflowException(
            f"advisor-gate: the check could not run ({type(exc).__name__}: {exc}); refusing to deploy") from exc
    if not getattr(report, "passed", False):
        failed = ", ".join(getattr(report, "failed", []) or []) or "see `advisor check`"
        raise MlflowException(f"advisor-gate: check failed for {model_uri}: {failed}; refusing to deploy")


def run_local(name, model_uri, flavor=None, config=None):
    ours, theirs = split_config(config)
    gate(model_uri, ours)
    if not ours.get("delegate"):
        from mlflow.exceptions import MlflowException

        raise MlflowException("advisor-gate run_local: the check passed; set config['advisor.delegate'] "
                              "to the real target to deploy locally")
    from mlflow.deployments import run_local as real_run_local

    return real_run_local(ours["delegate"], name, model_uri, flavor, theirs)


def _build():
    from mlflow.deployments import BaseDeploymentClient, get_deploy_client
    from mlflow.exceptions import MlflowException

    class AdvisorGateClient(BaseDeploymentClient):
        def __init__(self, target_uri):
            super().__init__(target_uri)
            _, _, rest = target_uri.partition(":/")
            self.delegate_uri = rest or None

        def _delegate(self):
            if not self.delegate_uri:
                raise MlflowException(f"{SCHEME}: name the real target, e.g. '{SCHEME}:/sagemaker'")
            return get_deploy_client(self.delegate_uri)

        def create_deployment(self, name, model_uri, flavor=None, config=None, endpoint=None):
            ours, theirs = split_config(config)
            gate(model_uri, ours)
            return self._delegate().create_deployment(name, model_uri, flavor=flavor, config=theirs, endpoint=endpoint)

        def update_deployment(self, name, model_uri=None, flavor=None, config=None, endpoint=None):
            ours, theirs = split_config(config)
            if model_uri is not None:
                gate(model_uri, ours)
            return self._delegate().update_deployment(name, model_uri=model_uri, flavor=flavor, config=theirs,
                                                      endpoint=endpoint)

        def delete_deployment(self, name, config=None, endpoint=None):
            return self._delegate().delete_deployment(name, config=split_config(config)[1], endpoint=endpoint)

        def list_deployments(self, endpoint=None):
            return self._delegate().list_deployments(endpoint=endpoint)

        def get_deployment(self, name, endpoint=None):
            return self._delegate().get_deployment(name, endpoint=endpoint)

        def predict(self, deployment_name=None, inputs=None, endpoint=None):
            return self._delegate().predict(deployment_name=deployment_name, inputs=inputs, endpoint=endpoint)

    return AdvisorGateClient


def __getattr__(name: str):
    if name == _CLASS:
        cls = globals()[name] = _build()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    # MLflow finds the client class with inspect.getmembers(module): list the lazy name too.
    return sorted(set(globals()) | {_CLASS})

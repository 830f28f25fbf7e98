"""The experiment description survives two first reports racing to set it (seen on PostgreSQL in CI)."""
from __future__ import annotations

import pytest

pytest.importorskip("sqlalchemy")  # the embedded sqlite store

from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from advisor.tracking.deliver import EXPERIMENT_DESCRIPTION, describe_experiment  # noqa: E402

NOTE = "mlflow.note.content"


class LosesTheRace(MlflowClient):
    """A real client whose tag write loses to a rival: the rival's write lands, then ours fails
    as PostgreSQL's primary key makes it fail (UniqueViolation -> BAD_REQUEST)."""

    def __init__(self, uri: str, rival_note: str | None):
        super().__init__(uri)
        self.rival_note = rival_note

    def set_experiment_tag(self, experiment_id, key, value):
        if self.rival_note is not None:
            MlflowClient(self._tracking_client.tracking_uri).set_experiment_tag(experiment_id, key, self.rival_note)
        raise MlflowException("duplicate key value violates unique constraint \"experiment_tag_pk\"",
                              error_code="BAD_REQUEST")


@pytest.fixture()
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_describes_a_bare_experiment(uri):
    client = MlflowClient(uri)
    exp_id = client.create_experiment("bare")
    describe_experiment(client, exp_id)
    assert client.get_experiment(exp_id).tags[NOTE] == EXPERIMENT_DESCRIPTION


def test_keeps_a_description_someone_wrote(uri):
    client = MlflowClient(uri)
    exp_id = client.create_experiment("described", tags={NOTE: "the team's own words"})
    describe_experiment(client, exp_id)
    assert client.get_experiment(exp_id).tags[NOTE] == "the team's own words"


def test_losing_the_race_to_a_rival_is_not_a_failure(uri):
    exp_id = MlflowClient(uri).create_experiment("raced")
    describe_experiment(LosesTheRace(uri, rival_note=EXPERIMENT_DESCRIPTION), exp_id)
    assert MlflowClient(uri).get_experiment(exp_id).tags[NOTE] == EXPERIMENT_DESCRIPTION


def test_a_failed_write_with_no_rival_still_fails(uri):
    exp_id = MlflowClient(uri).create_experiment("broken")
    with pytest.raises(MlflowException, match="experiment_tag_pk"):
        describe_experiment(LosesTheRace(uri, rival_note=None), exp_id)

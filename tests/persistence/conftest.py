from tests.persistence.fixtures import *  # noqa: F403

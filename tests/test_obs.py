"""The observation contract: belief keeping, neighbour hearing, layout, hash."""

import numpy as np
import pytest

from sim import obs as O
from sim.config import ConfigError, config_from_dict, make_config


@pytest.fixture
def cov():
    return make_config("coverage", width=10, height=8, cell_size=0.5, footprint=3, patch_size=5,
                       summary_size=2, comm_radius=1.0, num_neighbours=2)


def test_layout_sizes_add_up(cov):
    layout = O.observation_layout(cov)
    assert [name for name, _ in layout] == [
        "own_position", "own_velocity", "neighbours", "belief_patch", "belief_summary"]
    assert O.observation_size(cov) == 3 + 3 + 2 * 7 + 25 + 4
    spread = make_config("spread", num_drones=3)
    assert dict(O.observation_layout(spread))["landmarks"] == 9


def test_hash_changes_with_observation_params_only(cov):
    h = O.observation_hash(cov)
    assert h == O.observation_hash(config_from_dict(cov.to_dict()))  # stable across rebuilds
    other = make_config("coverage", **{k: v for k, v in cov.to_dict().items() if k != "scenario"}
                        | {"comm_radius": 2.0})
    assert O.observation_hash(other) != h
    sim_only = make_config("coverage", **{k: v for k, v in cov.to_dict().items() if k != "scenario"}
                           | {"collision_penalty": 1.0, "max_steps": 7})
    assert O.observation_hash(sim_only) == h


def test_footprint_marks_cells_inside_field_only(cov):
    belief = O.new_belief(cov)
    # Drone in the corner cell (0, 0): a 3 x 3 footprint has only 2 x 2 cells in the field.
    O.mark_footprints(belief, np.array([[0.1, 0.1, 1.0]]), None, cov)
    covered = O.belief_interior(belief, cov) == O.COVERED
    assert covered.sum() == 4
    assert covered[:2, :2].all()
    # The border stays "outside".
    assert (belief == -1).sum() == belief.size - cov.width * cov.height


def test_footprint_ignores_drones_outside_altitude_band(cov):
    belief = O.new_belief(cov)
    O.mark_footprints(belief, np.array([[2.0, 2.0, 0.1], [2.0, 2.0, 3.0]]), None, cov)
    assert (O.belief_interior(belief, cov) == O.TO_COVER).all()


def test_belief_hears_only_neighbours_within_radius(cov):
    belief = O.new_belief(cov)
    own = np.array([1.25, 1.25, 1.0])
    others = np.array([[1.25 + 0.9, 1.25, 1.0],   # heard (0.9 m)
                       [4.0, 3.5, 1.0]])          # too far
    O.update_belief(belief, own, others, None, cov)
    covered = O.belief_interior(belief, cov) == O.COVERED
    assert covered[2, 2] and covered[2, 4]  # own cell, heard neighbour's cell
    assert not covered[7, 8]  # the far drone's cell stays unknown
    assert covered.sum() == 9 + 6  # two overlapping 3 x 3 footprints


def test_patch_is_egocentric_and_marks_outside(cov):
    belief = O.new_belief(cov)
    O.mark_footprints(belief, np.array([[0.25, 0.25, 1.0]]), None, cov)
    patch = O.belief_patch(belief, np.array([0.25, 0.25, 1.0]), cov).reshape(5, 5)
    # Row index = y offset (-2..2), column = x offset (-2..2); centre is the drone's cell.
    assert patch[2, 2] == 0.0  # covered
    assert patch[0, 2] == -1.0 and patch[2, 0] == -1.0  # south and west of the field
    assert patch[4, 4] == 1.0  # north-east, not yet covered


def test_summary_is_fraction_still_to_cover(cov):
    belief = O.new_belief(cov)
    O.belief_interior(belief, cov)[:4, :5] = O.COVERED  # the whole south-west block
    summary = O.belief_summary(belief, cov).reshape(2, 2)
    np.testing.assert_allclose(summary, [[0.0, 1.0], [1.0, 1.0]])


def test_neighbours_sorted_nearest_first_and_masked(cov):
    own = np.array([2.0, 2.0, 1.0])
    others = np.array([[2.8, 2.0, 1.0], [2.0, 2.3, 1.0], [9.0, 9.0, 1.0]])
    vel = np.zeros((3, 3))
    heard = O.heard_mask(own, others, None, cov.comm_radius)
    feats = O.nearest_neighbours(own, np.zeros(3), others, vel, heard, cov)
    np.testing.assert_allclose(feats[0, :3], [0.0, 0.3, 0.0], atol=1e-6)
    np.testing.assert_allclose(feats[1, :3], [0.8, 0.0, 0.0], atol=1e-6)
    assert feats[:, 6].tolist() == [1.0, 1.0]
    # Only one heard -> second slot is padding.
    far = np.array([[2.5, 2.0, 1.0], [9.0, 9.0, 1.0]])
    feats = O.nearest_neighbours(own, np.zeros(3), far, np.zeros((2, 3)),
                                 O.heard_mask(own, far, None, cov.comm_radius), cov)
    assert feats[:, 6].tolist() == [1.0, 0.0] and not feats[1].any()


def test_batched_and_single_agent_observations_agree(cov):
    """The node builds one agent's observation; the simulator builds them all at once."""
    rng = np.random.default_rng(0)
    n = 4
    pos = rng.uniform([0, 0, 0.6], [5, 4, 1.4], size=(n, 3))
    vel = rng.normal(size=(n, 3))
    beliefs = O.new_belief(cov, (n,))
    others = np.broadcast_to(pos[None], (n, n, 3))
    valid = ~np.eye(n, dtype=bool)
    O.update_belief(beliefs, pos, others, valid, cov)
    batched = O.build_observation(cov, pos, vel, others, np.broadcast_to(vel[None], (n, n, 3)),
                                  valid, belief=beliefs)
    for i in range(n):
        single_belief = O.new_belief(cov)
        rest = [j for j in range(n) if j != i]
        O.update_belief(single_belief, pos[i], pos[rest], None, cov)
        single = O.build_observation(cov, pos[i], vel[i], pos[rest], vel[rest],
                                     belief=single_belief)
        assert single.dtype == np.float32 and single.shape == (O.observation_size(cov),)
        np.testing.assert_array_equal(single, batched[i])


def test_config_errors_name_the_parameter():
    with pytest.raises(ConfigError, match="num_drones"):
        make_config("coverage", num_drones=0)
    with pytest.raises(ConfigError, match="footprint=25 is larger than the field"):
        make_config("coverage", footprint=25)
    with pytest.raises(ConfigError, match="more than the field can hold"):
        make_config("coverage", num_drones=500)
    with pytest.raises(ConfigError, match="unknown scenario 'swarm'"):
        make_config("swarm")
    with pytest.raises(ConfigError, match="unknown parameter 'colour'"):
        make_config("coverage", colour="red")
    with pytest.raises(ConfigError, match="policy_hz"):
        make_config("coverage", policy_hz=7)


def test_coverage_hash_ignores_swarm_size_but_spread_does_not():
    """A coverage policy observes K neighbours whatever N is; spread observes N landmarks."""
    assert (O.observation_hash(make_config("coverage", num_drones=4))
            == O.observation_hash(make_config("coverage", num_drones=16)))
    assert (O.observation_hash(make_config("spread", num_drones=4))
            != O.observation_hash(make_config("spread", num_drones=5)))

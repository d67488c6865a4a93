"""The observation contract: what one drone knows, turned into its policy input.

Pure numpy, no simulator objects in any signature. The simulator calls these
functions for every agent of every environment at once (leading batch
dimensions), and the ROS agent node calls the very same functions on the states
it received over ROS. Never a second implementation.

What a drone knows:
- its own position and velocity (ENU, metres, m/s);
- states of other drones it *heard*: only those within the communication radius
  (the caller passes everything it received plus a validity mask; the radius
  filter is applied here);
- coverage: its own belief map, the cells it covered plus the footprints of
  neighbours it heard, updated with `update_belief` once per policy tick; in a
  heterogeneous swarm (per-drone `speed_factors`, `footprints`) each drone's own footprint,
  looked up by drone index (`drone_footprints`), and with `own_profile` its own profile;
- coverage with `range_rays`: its own range readings (metres, one per world-frame ray,
  `sim.obstacles`: the simulator's ray cast, or a LaserScan through `laserscan_readings`),
  normalised here to distance / range_max;
- spread: the landmark positions (the task definition);
- pursuit, "drone" view: its own team and the team of every neighbour it heard (drones
  0..P-1 pursue, the others evade: `team_flags`); "cells" view: the cell of every drone,
  its own first, as one one-hot joint index (`cells_observation`), and its actions are
  moves to a neighbouring cell (`cell_action_setpoint`, the setpoint a node sends);
- with `cfg.mean_action` (the mean-field family): the mean action of the neighbours it
  heard, read off their velocities (`neighbour_mean_action`), as the last field.

Belief maps are int8 arrays (small: the simulator keeps one per drone per
environment) padded by a border so that egocentric patches never index outside,
stored with the values the policy sees: 1 = still to cover, 0 = covered,
-1 = outside the field. Create them with `new_belief`; read the interior with
`belief_interior`; test cells with `COVERED`/`TO_COVER`.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from sim import kernels
from sim.config import (
    CELL_MOVES,
    DISCRETE_ACTIONS,
    CoverageConfig,
    FlockConfig,
    FormationConfig,
    PursuitConfig,
    SpreadConfig,
    SwarmConfig,
)

OBS_DTYPE = np.float32
TO_COVER, COVERED, OUTSIDE = 1, 0, -1  # belief cell values
NEIGHBOUR_FEATURES = 7  # relative position (3), relative velocity (3), present flag (1)
PURSUER, EVADER = 1.0, -1.0  # team flags of the pursuit drone view (0 pads absent neighbours)


# ----------------------------------------------------------------------------------------
# Layout and its hash
# ----------------------------------------------------------------------------------------
def observation_layout(cfg: SwarmConfig) -> list[tuple[str, int]]:
    """Named fields of the observation vector, in order, with their sizes."""
    if is_cells_view(cfg):
        return [("joint_cell", cfg.num_joint_cells)]  # one-hot, see joint_cell_index
    layout = [
        ("own_position", 3),  # field-normalised to [-1, 1] (x, y), altitude band to [-1, 1] (z)
        ("own_velocity", 3),  # divided by the velocity limits
        ("neighbours", cfg.num_neighbours * NEIGHBOUR_FEATURES),  # K nearest heard, nearest first
    ]
    if isinstance(cfg, CoverageConfig):
        layout += [
            ("belief_patch", cfg.patch_size * cfg.patch_size),  # egocentric, 1 = still to cover
            ("belief_summary", cfg.summary_size * cfg.summary_size),  # fraction uncovered per block
        ]
        if has_profile_features(cfg):
            layout += [("own_profile", 2)]  # speed factor, footprint / widest footprint
        if cfg.range_rays:
            layout += [("ranges", cfg.range_rays)]  # distance / range_max per ray, 1 = nothing
    elif isinstance(cfg, SpreadConfig):
        layout += [("landmarks", cfg.num_landmarks * 3)]  # relative positions / arena size
    elif isinstance(cfg, PursuitConfig):
        layout += [
            ("own_team", 1),  # +1 pursuer, -1 evader
            ("neighbour_teams", cfg.num_neighbours),  # same order as neighbours, 0 = padding
        ]
    elif isinstance(cfg, FormationConfig):
        from sim.formation import feature_layout

        layout += feature_layout(cfg)  # slots relative to the drone, reference velocity
    elif isinstance(cfg, FlockConfig):
        from sim.flock import feature_layout

        layout += feature_layout(cfg)  # goal centre relative to the drone / arena size
    if cfg.mean_action:
        layout += [("neighbour_mean_action", mean_action_size(cfg))]  # always the last field
    return layout


def observation_size(cfg: SwarmConfig) -> int:
    return sum(size for _, size in observation_layout(cfg))


def observation_bounds(cfg: SwarmConfig) -> tuple[float, float]:
    """Bounds of every observation entry: [0, 1] for a one-hot state (the pursuit cells view,
    which is how the tabular learners recognise a finite state), unbounded otherwise."""
    return (0.0, 1.0) if is_cells_view(cfg) else (-np.inf, np.inf)


def is_cells_view(cfg: SwarmConfig) -> bool:
    return isinstance(cfg, PursuitConfig) and cfg.view == "cells"


def observation_hash(cfg: SwarmConfig) -> str:
    """A short hash of the layout and every parameter the observation depends on.

    A policy bundle stores it; a node recomputes it from its own configuration and
    refuses to run a policy trained on a different observation.
    """
    payload = {"layout": observation_layout(cfg), "params": cfg.observation_params(),
               "version": 1}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------
# Hearing neighbours
# ----------------------------------------------------------------------------------------
def norms(vectors: np.ndarray) -> np.ndarray:
    """Euclidean lengths (...,) of vectors (..., 3): `np.linalg.norm(vectors, axis=-1)` bit for
    bit (the same sum, x^2 + y^2, then + z^2), without its reduction over the length-3 axis,
    which costs ten times the arithmetic on a step's few thousand vectors."""
    squares = vectors * vectors
    return np.sqrt(squares[..., 0] + squares[..., 1] + squares[..., 2])


def relative(points: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """`points - origin[..., None, :]`, (..., M, 3): points (..., M, 3) seen from origin (..., 3).
    The same numbers, computed on rows of M x 3 coordinates against the origin repeated M
    times: numpy's loop over a broadcast length-3 axis costs twice that on a step's arrays."""
    m = points.shape[-2]
    rows = np.reshape(points, points.shape[:-2] + (m * 3,)) - np.tile(origin, m)
    return rows.reshape(rows.shape[:-1] + (m, 3))


def heard_mask(own_pos: np.ndarray, other_pos: np.ndarray, other_valid: np.ndarray | None,
               comm_radius: float) -> np.ndarray:
    """Which of the other drones this drone hears: valid and within the radius. (..., M) bool."""
    return _heard(norms(relative(other_pos, own_pos)), other_valid, comm_radius)


def _heard(dist: np.ndarray, other_valid: np.ndarray | None, comm_radius: float) -> np.ndarray:
    """`heard_mask` from the distances (..., M) to the others."""
    heard = dist <= comm_radius
    if other_valid is not None:
        heard &= other_valid
    return heard


def nearest_neighbours(own_pos: np.ndarray, own_vel: np.ndarray, other_pos: np.ndarray,
                       other_vel: np.ndarray, heard: np.ndarray, cfg: SwarmConfig) -> np.ndarray:
    """Features of the K nearest heard neighbours, nearest first, zero-padded.

    Returns (..., K, 7): relative position / comm radius, relative velocity / vxy, present flag.
    """
    rel_pos = relative(other_pos, own_pos)
    return _nearest(rel_pos, norms(rel_pos), own_vel, other_vel, heard, cfg)[0]


def _nearest(rel_pos, dist, own_vel, other_vel, heard, cfg, other_teams=None):
    """`nearest_neighbours` from the others' relative positions (..., M, 3) and distances
    (..., M), and with other_teams (..., M) the team flags (..., K) of the same neighbours in
    the same order (0 for padding): one sort for both. Batches of `kernels.MIN_ROWS` drones or
    more without teams go through the compiled loop where numba is installed (the same
    numbers, `sim.kernels`)."""
    k = cfg.num_neighbours
    batch = rel_pos.shape[:-2]
    out = np.zeros(batch + (k, NEIGHBOUR_FEATURES), dtype=OBS_DTYPE)
    teams = None if other_teams is None else np.zeros(batch + (k,), dtype=OBS_DTYPE)
    m = rel_pos.shape[-2]
    if k == 0 or m == 0:
        return out, teams
    flat_out = out.reshape(-1, k, NEIGHBOUR_FEATURES)
    if teams is None and flat_out.shape[0] >= kernels.MIN_ROWS and kernels.available():
        kernels.nearest_rows(rel_pos.reshape(-1, m, 3), dist.reshape(-1, m),
                             np.broadcast_to(own_vel, batch + (3,)).reshape(-1, 3),
                             np.broadcast_to(other_vel, rel_pos.shape).reshape(-1, m, 3),
                             np.broadcast_to(heard, dist.shape).reshape(-1, m), flat_out,
                             cfg.comm_radius, cfg.vxy)
        return out, teams
    heard_rows = heard.reshape(-1, m)
    take = min(k, m)
    order = np.argsort(np.where(heard_rows, dist.reshape(-1, m), np.inf), axis=-1,
                       kind="stable")[:, :take]
    entry = order + np.arange(0, order.shape[0] * m, m)[:, None]  # into the (R * M) entries
    present = np.take(heard_rows, entry)  # the heard sort first (the others are at inf)
    rel_vel = relative(other_vel, own_vel).reshape(-1, 3)
    # Products straight into the float32 output (computed in float64, then rounded, as before).
    np.multiply(np.take(rel_pos.reshape(-1, 3), entry, axis=0),
                (present / cfg.comm_radius)[..., None], out=flat_out[:, :take, 0:3])
    np.multiply(np.take(rel_vel, entry, axis=0), (present / cfg.vxy)[..., None],
                out=flat_out[:, :take, 3:6])
    flat_out[:, :take, 6] = present
    if teams is not None:
        flags = np.broadcast_to(np.asarray(other_teams, dtype=OBS_DTYPE), heard.shape).reshape(-1)
        teams.reshape(-1, k)[:, :take] = flags[entry] * present
    return out, teams


def mean_action_size(cfg: SwarmConfig) -> int:
    """Width of the mean action: one share per discrete action, or (vx, vy, vz)."""
    return len(DISCRETE_ACTIONS) if cfg.action_mode == "discrete" else 3


_DIRECTIONS = np.array([d for _, d in DISCRETE_ACTIONS])  # (A, 3) unit setpoints, hover = 0


def neighbour_mean_action(other_vel: np.ndarray, heard: np.ndarray,
                          cfg: SwarmConfig) -> np.ndarray:
    """The mean action of the neighbours heard, (..., A): what mean-field policies read.

    A drone hears its neighbours' velocities, not their commands; a velocity tracks the
    setpoint the neighbour was last commanded, so it stands for that neighbour's action (one
    policy tick old, as in Yang et al.'s Algorithm 1, where an agent acts on the mean of the
    previous actions). Continuous: the velocity over the limits (vx/vxy, vy/vxy, vz/vz),
    clipped to [-1, 1]; the yaw rate is not heard, so the mean holds the three translational
    components. Discrete: the one-hot of the discrete action whose setpoint is nearest to
    that scaled velocity, so the mean is the share of neighbours flying each action. Zeros
    when no neighbour is heard. other_vel: (..., M, 3); heard: (..., M) from `heard_mask`.
    """
    scaled = np.asarray(other_vel, dtype=np.float64) / np.array([cfg.vxy, cfg.vxy, cfg.vz])
    if cfg.action_mode == "discrete":
        # nearest setpoint: argmin |u - d|^2 = argmin |d|^2 - 2 u.d
        score = (_DIRECTIONS ** 2).sum(-1) - 2.0 * scaled @ _DIRECTIONS.T  # (..., M, A)
        actions = np.eye(len(DISCRETE_ACTIONS))[score.argmin(-1)]
    else:
        actions = np.clip(scaled, -1.0, 1.0)
    weight = heard.astype(np.float64)
    total = np.einsum("...m,...ma->...a", weight, actions)
    count = weight.sum(-1)[..., None]
    return (total / np.maximum(count, 1.0)).astype(OBS_DTYPE)


# ----------------------------------------------------------------------------------------
# Belief maps (coverage)
# ----------------------------------------------------------------------------------------
def belief_pad(cfg: CoverageConfig) -> int:
    """Border width: enough for the egocentric patch and the widest footprint, and at least 1."""
    return max(cfg.patch_size // 2, cfg.widest_footprint // 2, 1)


def has_profile_features(cfg: SwarmConfig) -> bool:
    """Whether the observation ends its coverage part with the drone's own profile."""
    return isinstance(cfg, CoverageConfig) and cfg.heterogeneous and cfg.own_profile


def drone_footprints(cfg: CoverageConfig) -> np.ndarray:
    """Every drone's footprint width in cells by drone index, (N,) int64. A node passes its own
    entry as `own_footprint` and those of the drones it received, by the ids in the swarm
    state, as `other_footprints`."""
    return np.asarray(cfg.drone_footprints(), dtype=np.int64)


def profile_features(cfg: CoverageConfig, drone_ids: np.ndarray) -> np.ndarray:
    """The `own_profile` field of drones by index, (..., 2): the speed factor and the footprint
    over the widest footprint of the swarm."""
    ids = np.asarray(drone_ids, dtype=np.int64)
    speed = np.asarray(cfg.drone_speed_factors(), dtype=np.float64)[ids]
    width = drone_footprints(cfg)[ids] / cfg.widest_footprint
    return np.stack([speed, width], axis=-1).astype(OBS_DTYPE)


def new_belief(cfg: CoverageConfig, batch_shape: tuple[int, ...] = ()) -> np.ndarray:
    """An empty belief map (every cell still to cover), padded with OUTSIDE."""
    pad = belief_pad(cfg)
    belief = np.full(batch_shape + (cfg.height + 2 * pad, cfg.width + 2 * pad), OUTSIDE,
                     dtype=np.int8)
    belief[..., pad:pad + cfg.height, pad:pad + cfg.width] = TO_COVER
    return belief


def belief_interior(belief: np.ndarray, cfg: CoverageConfig) -> np.ndarray:
    """View of the field cells of a padded belief map, (..., H, W), row = y, column = x."""
    pad = belief_pad(cfg)
    return belief[..., pad:pad + cfg.height, pad:pad + cfg.width]


def position_to_cell(pos: np.ndarray, cfg: CoverageConfig) -> tuple[np.ndarray, np.ndarray]:
    """Cell column (x) and row (y) indices of positions; may lie outside the field."""
    ix = np.floor(pos[..., 0] / cfg.cell_size).astype(np.int64)
    iy = np.floor(pos[..., 1] / cfg.cell_size).astype(np.int64)
    return ix, iy


def inside_geofence(pos: np.ndarray, cfg: SwarmConfig) -> np.ndarray:
    """True where a position is inside the field and the altitude band."""
    fx, fy = cfg.field_size
    return ((pos[..., 0] >= 0) & (pos[..., 0] <= fx) & (pos[..., 1] >= 0) & (pos[..., 1] <= fy)
            & (pos[..., 2] >= cfg.altitude_min) & (pos[..., 2] <= cfg.altitude_max))


def mark_footprints(belief: np.ndarray, positions: np.ndarray, valid: np.ndarray | None,
                    cfg: CoverageConfig, footprints: np.ndarray | None = None) -> None:
    """Mark the footprints of drones at `positions` as covered, in place.

    belief: (..., Hp, Wp) padded map; positions: (..., M, 3) with the same leading
    dimensions; valid: (..., M) which positions count; footprints: (..., M) each drone's
    footprint width in cells (broadcast; None: cfg.footprint for all). A drone outside the
    geofence (field and altitude band) covers nothing; footprint cells outside the field are
    not marked.
    """
    hp, wp = belief.shape[-2:]
    flat = belief.reshape(-1, hp * wp)
    if not np.shares_memory(flat, belief):
        raise ValueError("belief map must be a contiguous array (create it with new_belief).")
    m = positions.shape[-2]
    pos = positions.reshape(-1, m, 3)
    ok = inside_geofence(pos, cfg)
    if valid is not None:
        ok &= np.broadcast_to(valid, positions.shape[:-1]).reshape(-1, m)
    if footprints is None:
        widths = {cfg.footprint: ok}
    else:
        sizes = np.broadcast_to(np.asarray(footprints, dtype=np.int64),
                                positions.shape[:-1]).reshape(-1, m)
        widths = {int(f): ok & (sizes == f) for f in np.unique(sizes[ok])}
    pad = belief_pad(cfg)
    for width, mask in widths.items():  # one pass per footprint width (a swarm has few)
        rows, drones = np.nonzero(mask)
        if rows.size == 0:
            continue
        ix, iy = position_to_cell(pos[rows, drones], cfg)
        r = width // 2
        offsets = np.arange(-r, r + 1)
        # Footprint cells beyond the field edge are clipped onto the edge cells of the same
        # footprint, which it covers anyway: every write lands inside the field.
        cols = np.clip(ix[:, None] + offsets, 0, cfg.width - 1) + pad  # (V, F)
        lines = (np.clip(iy[:, None] + offsets, 0, cfg.height - 1) + pad) * wp  # (V, F)
        flat[rows[:, None, None], lines[:, :, None] + cols[:, None, :]] = COVERED


def update_belief(belief: np.ndarray, own_pos: np.ndarray, other_pos: np.ndarray,
                  other_valid: np.ndarray | None, cfg: CoverageConfig,
                  own_footprint: np.ndarray | int | None = None,
                  other_footprints: np.ndarray | None = None) -> None:
    """One policy tick of belief keeping: own footprint plus footprints of neighbours heard.
    own_footprint (...,) and other_footprints (..., M): the widths in cells (heterogeneous
    swarms, `drone_footprints`); None: cfg.footprint."""
    _update_belief(belief, own_pos, other_pos,
                   heard_mask(own_pos, other_pos, other_valid, cfg.comm_radius), cfg,
                   own_footprint, other_footprints)


def _update_belief(belief: np.ndarray, own_pos: np.ndarray, other_pos: np.ndarray,
                   heard: np.ndarray, cfg: CoverageConfig, own_footprint=None,
                   other_footprints=None) -> None:
    positions = np.concatenate([own_pos[..., None, :], other_pos], axis=-2)
    valid = np.concatenate([np.ones(heard.shape[:-1] + (1,), dtype=bool), heard], axis=-1)
    widths = None
    if own_footprint is not None or other_footprints is not None:
        own = np.full(heard.shape[:-1], cfg.footprint) if own_footprint is None else own_footprint
        others = (np.full(heard.shape, cfg.footprint) if other_footprints is None
                  else other_footprints)
        own = np.broadcast_to(np.asarray(own, dtype=np.int64), heard.shape[:-1])
        others = np.broadcast_to(np.asarray(others, dtype=np.int64), heard.shape)
        widths = np.concatenate([own[..., None], others], axis=-1)
    mark_footprints(belief, positions, valid, cfg, widths)


def belief_patch(belief: np.ndarray, own_pos: np.ndarray, cfg: CoverageConfig) -> np.ndarray:
    """Egocentric P x P patch centred on the drone's cell: 1 = to cover, 0 = covered, -1 = outside."""
    p = cfg.patch_size
    r = p // 2
    pad = belief_pad(cfg)
    hp, wp = belief.shape[-2:]
    ix, iy = position_to_cell(own_pos, cfg)
    # Far outside the field the patch is all border; clamp so indices stay in the padded map.
    ix = np.clip(ix, -pad + r, cfg.width - 1 + pad - r)
    iy = np.clip(iy, -pad + r, cfg.height - 1 + pad - r)
    offs = np.arange(-r, r + 1)
    window = (offs[:, None] * wp + offs[None, :]).ravel()  # (P*P,) flat offsets around the centre
    centre = (iy.reshape(-1) + pad) * wp + ix.reshape(-1) + pad
    start = np.arange(centre.size) * (hp * wp) + centre  # flat index of each map's centre cell
    patch = np.take(belief.reshape(-1), start[:, None] + window)
    return patch.astype(OBS_DTYPE).reshape(own_pos.shape[:-1] + (p * p,))


def belief_summary(belief: np.ndarray, cfg: CoverageConfig) -> np.ndarray:
    """Coarse G x G summary of the whole belief: fraction of each block still to cover.

    Blocks are (H/G) x (W/G) cells (the config requires G to divide both). Plain adds of
    strided int8 views: the belief maps are read once, which is what bounds the cost.
    """
    g = cfg.summary_size
    bh, bw = cfg.height // g, cfg.width // g
    todo = belief_interior(belief, cfg).reshape(-1, g, bh, cfg.width)
    rows = todo[:, :, 0].astype(np.int16)  # (B, G, W): cells to cover per block row and column
    for k in range(1, bh):
        rows += todo[:, :, k]
    cols = rows.reshape(-1, g, g, bw)
    blocks = cols[..., 0].copy()  # (B, G, G)
    for k in range(1, bw):
        blocks += cols[..., k]
    return (blocks.astype(OBS_DTYPE) / (bh * bw)).reshape(belief.shape[:-2] + (g * g,))


# ----------------------------------------------------------------------------------------
# Pursuit: teams and the cells view
# ----------------------------------------------------------------------------------------
def team_flags(cfg: PursuitConfig) -> np.ndarray:
    """Every drone's team flag by drone index, (N,): +1 for drones 0..P-1 (pursuers), -1 for the
    evaders. A node passes its own entry as `own_team` and those of the drones it received as
    `other_teams`."""
    flags = np.full(cfg.num_drones, EVADER, dtype=OBS_DTYPE)
    flags[: cfg.num_pursuers] = PURSUER
    return flags


def speed_scales(cfg: SwarmConfig) -> np.ndarray:
    """Every drone's factor on the velocity limits by drone index, (N,): pursuit, 1 for the
    pursuers and evader_speed for the evaders; coverage, its `speed_factors` (1 without
    profiles); 1 elsewhere. A drone's setpoints are its action times (vxy, vxy, vz) times its
    factor (cells view: `cell_action_setpoint`'s speed_scale)."""
    if isinstance(cfg, CoverageConfig):
        return np.asarray(cfg.drone_speed_factors(), dtype=np.float64)
    if not isinstance(cfg, PursuitConfig):
        return np.ones(cfg.num_drones)
    scales = np.full(cfg.num_drones, float(cfg.evader_speed))
    scales[: cfg.num_pursuers] = 1.0
    return scales


def arena_cell(pos: np.ndarray, cfg: PursuitConfig) -> np.ndarray:
    """Cell index (row-major: iy * cells_per_side + ix) of positions (..., 3); a position off the
    arena counts in the nearest edge cell."""
    c = cfg.cells_per_side
    ix, iy = position_to_cell(np.asarray(pos, dtype=np.float64), cfg)
    return np.clip(iy, 0, c - 1) * c + np.clip(ix, 0, c - 1)


def joint_cell_index(cfg: PursuitConfig, own_pos: np.ndarray, other_pos: np.ndarray) -> np.ndarray:
    """The cells view's state index, (...,) int64: the own cell first (most significant), then
    every other drone's cell in drone index order, in base cells_per_side^2. For 1 v 1:
    own_cell * 16 + opponent_cell on 4 x 4 cells. other_pos: (..., N - 1, 3), every drone but
    this one, in index order."""
    other_pos = np.asarray(other_pos, dtype=np.float64)
    if other_pos.shape[-2:] != (cfg.num_drones - 1, 3):
        raise ValueError(f"the pursuit cells view needs every other drone's position, in drone "
                         f"index order: shape (..., {cfg.num_drones - 1}, 3) (got "
                         f"{other_pos.shape}).")
    index = arena_cell(own_pos, cfg).astype(np.int64)
    cells = arena_cell(other_pos, cfg)
    for j in range(cfg.num_drones - 1):
        index = index * cfg.num_cells + cells[..., j]
    return index


def cells_observation(cfg: PursuitConfig, own_pos: np.ndarray, other_pos: np.ndarray) -> np.ndarray:
    """One-hot (..., (cells_per_side^2)^N) float32 of `joint_cell_index`: the cells view."""
    index = joint_cell_index(cfg, own_pos, other_pos)
    out = np.zeros(index.shape + (cfg.num_joint_cells,), dtype=OBS_DTYPE)
    np.put_along_axis(out, index[..., None], 1.0, axis=-1)
    return out


_CELL_STEPS = np.array([d for _, d in CELL_MOVES], dtype=np.int64)  # (5, 2) cell offsets


def cell_move_target(cfg: PursuitConfig, actions: np.ndarray, own_pos: np.ndarray) -> np.ndarray:
    """Where a cells-view action leads, (..., 2) metres: the centre of the neighbouring cell
    (`CELL_MOVES`), of the own cell for stay or for a move off the arena."""
    c = cfg.cells_per_side
    ix, iy = position_to_cell(np.asarray(own_pos, dtype=np.float64), cfg)
    step = _CELL_STEPS[np.asarray(actions, dtype=np.int64)]
    tx = np.clip(np.clip(ix, 0, c - 1) + step[..., 0], 0, c - 1)
    ty = np.clip(np.clip(iy, 0, c - 1) + step[..., 1], 0, c - 1)
    return (np.stack([tx, ty], axis=-1) + 0.5) * cfg.cell_size


def cell_action_setpoint(cfg: PursuitConfig, actions: np.ndarray, own_pos: np.ndarray,
                         speed_scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Velocity setpoints (..., 4) m/s of cells-view actions (...,) at positions (..., 3): the
    velocity that reaches the target cell's centre in one policy step, (target - position) x
    policy_hz, clipped to the drone's limits (vxy, vz) x speed_scale (an evader's
    evader_speed); the altitude is held at start_altitude the same way, yaw rate 0."""
    own_pos = np.asarray(own_pos, dtype=np.float64)
    scale = np.asarray(speed_scale, dtype=np.float64)[..., None]
    setpoint = np.zeros(own_pos.shape[:-1] + (4,))
    xy = (cell_move_target(cfg, actions, own_pos) - own_pos[..., :2]) * cfg.policy_hz
    setpoint[..., :2] = np.clip(xy, -cfg.vxy * scale, cfg.vxy * scale)
    z = (cfg.start_altitude - own_pos[..., 2:3]) * cfg.policy_hz
    setpoint[..., 2:3] = np.clip(z, -cfg.vz * scale, cfg.vz * scale)
    return setpoint


# ----------------------------------------------------------------------------------------
# Range readings (coverage with obstacles)
# ----------------------------------------------------------------------------------------
def range_features(ranges: np.ndarray | None, batch_shape: tuple[int, ...],
                   cfg: CoverageConfig) -> np.ndarray:
    """The `ranges` field, (..., R): each reading over range_max, clipped to [0, 1], 1 where
    nothing is in range (inf or NaN)."""
    if ranges is None:
        raise ValueError(f"this coverage policy observes {cfg.range_rays} range readings; pass "
                         f"ranges (..., {cfg.range_rays}) in metres (sim.obstacles.range_readings, "
                         f"or laserscan_readings from a sensor).")
    ranges = np.asarray(ranges, dtype=np.float64)
    if ranges.shape[-1:] != (cfg.range_rays,):
        raise ValueError(f"ranges must hold range_rays={cfg.range_rays} readings per drone "
                         f"(got shape {ranges.shape}).")
    ranges = np.where(np.isfinite(ranges), ranges, cfg.range_max)
    out = np.clip(ranges / cfg.range_max, 0.0, 1.0).astype(OBS_DTYPE)
    return np.broadcast_to(out, batch_shape + (cfg.range_rays,))


# ----------------------------------------------------------------------------------------
# The observation
# ----------------------------------------------------------------------------------------
def own_features(own_pos: np.ndarray, own_vel: np.ndarray, cfg: SwarmConfig) -> np.ndarray:
    fx, fy = cfg.field_size
    zc = 0.5 * (cfg.altitude_min + cfg.altitude_max)
    zh = 0.5 * (cfg.altitude_max - cfg.altitude_min)
    pos = np.stack([own_pos[..., 0] / fx * 2 - 1, own_pos[..., 1] / fy * 2 - 1,
                    (own_pos[..., 2] - zc) / zh], axis=-1)
    vel = own_vel / np.array([cfg.vxy, cfg.vxy, cfg.vz])
    return np.concatenate([pos, vel], axis=-1).astype(OBS_DTYPE)


def build_observation(cfg: SwarmConfig, own_pos: np.ndarray, own_vel: np.ndarray,
                      other_pos: np.ndarray, other_vel: np.ndarray,
                      other_valid: np.ndarray | None = None, belief: np.ndarray | None = None,
                      landmarks: np.ndarray | None = None, own_team: np.ndarray | float | None = None,
                      other_teams: np.ndarray | None = None,
                      target: np.ndarray | None = None,
                      ranges: np.ndarray | None = None, own_id: np.ndarray | int | None = None,
                      other_ids: np.ndarray | None = None) -> np.ndarray:
    """Observation vectors (..., D) float32, laid out as `observation_layout(cfg)`.

    own_pos, own_vel: (..., 3). other_pos, other_vel: (..., M, 3) every other drone
    whose state was received (M may be 0); other_valid: (..., M) which entries are
    real. The communication-radius filter is applied here. belief: (..., Hp, Wp)
    from `new_belief` (coverage). landmarks: (..., L, 3) (spread). Pursuit "drone" view:
    own_team (...,) and other_teams (..., M), the `team_flags` of this drone and of the
    others. Pursuit "cells" view: other_pos must hold every other drone, in index order
    (M = N - 1; velocities, validity and teams are not used). target: (..., 6) the mission
    target's position and velocity in the world frame (ENU, m, m/s), for the worlds that
    have one (`sim.missions.uses_target`; broadcast over the drones). ranges: (..., R) the
    drone's range readings in metres (coverage with range_rays = R > 0; inf or NaN = nothing
    in range), ray k at heading 2 pi k / R in the world frame (`sim.obstacles.ray_angles`).
    Heterogeneous coverage (`cfg.heterogeneous`): own_id (...,) and other_ids (..., M), the
    drone indices of this drone and of the others, which give their footprints and the own
    profile.
    """
    return _observe(cfg, own_pos, own_vel, other_pos, other_vel, other_valid, belief, landmarks,
                    own_team, other_teams, update=False, target=target, ranges=ranges,
                    own_id=own_id, other_ids=other_ids)


def observe_tick(cfg: SwarmConfig, own_pos: np.ndarray, own_vel: np.ndarray,
                 other_pos: np.ndarray, other_vel: np.ndarray,
                 other_valid: np.ndarray | None = None, belief: np.ndarray | None = None,
                 landmarks: np.ndarray | None = None, own_team: np.ndarray | float | None = None,
                 other_teams: np.ndarray | None = None,
                 target: np.ndarray | None = None,
                 ranges: np.ndarray | None = None, own_id: np.ndarray | int | None = None,
                 other_ids: np.ndarray | None = None) -> np.ndarray:
    """One policy tick of a drone: update its belief (coverage) from what it hears, then build
    its observation. The simulator and the agent node both call this once per tick.

    Same arguments as `build_observation`; `belief` is updated in place.
    """
    return _observe(cfg, own_pos, own_vel, other_pos, other_vel, other_valid, belief, landmarks,
                    own_team, other_teams, update=True, target=target, ranges=ranges,
                    own_id=own_id, other_ids=other_ids)


def _observe(cfg, own_pos, own_vel, other_pos, other_vel, other_valid, belief, landmarks,
             own_team, other_teams, update, target=None, ranges=None, own_id=None, other_ids=None):
    if is_cells_view(cfg):
        return cells_observation(cfg, own_pos, other_pos)
    own_pos = np.asarray(own_pos, dtype=np.float64)
    own_vel = np.asarray(own_vel, dtype=np.float64)
    other_pos = np.asarray(other_pos, dtype=np.float64)
    other_vel = np.asarray(other_vel, dtype=np.float64)
    rel_pos = relative(other_pos, own_pos)
    dist = norms(rel_pos)  # once for hearing and the neighbours' order
    heard = _heard(dist, other_valid, cfg.comm_radius)
    pursuit = isinstance(cfg, PursuitConfig)
    if pursuit and (own_team is None or other_teams is None):
        raise ValueError("pursuit observations need own_team and other_teams, the team flags of "
                         "this drone and of the others (see team_flags).")
    nbrs, teams = _nearest(rel_pos, dist, own_vel, other_vel, heard, cfg,
                           other_teams if pursuit else None)
    parts = [own_features(own_pos, own_vel, cfg), nbrs.reshape(own_pos.shape[:-1] + (-1,))]
    if isinstance(cfg, CoverageConfig):
        if belief is None:
            raise ValueError("coverage observations need the agent's belief map (see new_belief).")
        own_fp = other_fp = None
        if cfg.heterogeneous:
            if own_id is None or other_ids is None:
                raise ValueError("heterogeneous coverage observations need own_id and other_ids, "
                                 "the drone indices of this drone and of the others (their "
                                 "footprints and profiles come from the config by index).")
            widths = drone_footprints(cfg)
            own_fp, other_fp = widths[np.asarray(own_id)], widths[np.asarray(other_ids)]
        if update:
            _update_belief(belief, own_pos, other_pos, heard, cfg, own_fp, other_fp)
        parts += [belief_patch(belief, own_pos, cfg), belief_summary(belief, cfg)]
        if has_profile_features(cfg):
            own = profile_features(cfg, own_id)
            parts.append(np.broadcast_to(own, own_pos.shape[:-1] + (2,)))
        if cfg.range_rays:
            parts.append(range_features(ranges, own_pos.shape[:-1], cfg))
    elif isinstance(cfg, SpreadConfig):
        if landmarks is None:
            raise ValueError("spread observations need the landmark positions (L, 3).")
        rel = relative(np.asarray(landmarks, dtype=np.float64), own_pos) / cfg.arena_size
        parts.append(rel.reshape(own_pos.shape[:-1] + (-1,)).astype(OBS_DTYPE))
    elif pursuit:
        own = np.broadcast_to(np.asarray(own_team, dtype=OBS_DTYPE), own_pos.shape[:-1])
        parts += [own[..., None], teams]
    elif isinstance(cfg, FormationConfig):
        from sim.formation import formation_features

        parts.append(formation_features(cfg, own_pos, own_vel, other_pos, other_vel, heard, target))
    elif isinstance(cfg, FlockConfig):
        from sim.flock import flock_features

        parts.append(flock_features(cfg, own_pos, target))
    if cfg.mean_action:
        parts.append(neighbour_mean_action(other_vel, heard, cfg))
    return np.concatenate(parts, axis=-1)

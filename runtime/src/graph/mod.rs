//! The graph engine: planning (constant folding, shape resolution, fusions) and the ops.

//! Scalar math that works with and without `std` (micromath on `no_std` targets).

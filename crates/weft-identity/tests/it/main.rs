//! weft-identity against hand-made records with known answers and the simulated shop's truth.

mod link;
mod simulated;
mod stable;

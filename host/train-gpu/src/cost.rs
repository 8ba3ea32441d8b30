//! The arithmetic and the compulsory memory traffic of one inner step on the GPU, and the
//! floor time they imply on a given device.
//!
//! Bytes count every buffer element each kernel must read or write once (f32 and u32 are four
//! bytes); re-reads a real kernel makes (tiles of A and B are read once per block of C) are not
//! counted, so the floor is a lower bound.

use sbd_train::engine::mlp::Shape;

/// FLOPs and bytes of one inner step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepCost {
    /// Floating-point operations of the matrix products (2 per multiply-add).
    pub flops: f64,
    /// Compulsory device-memory traffic.
    pub bytes: f64,
    /// Kernel launches.
    pub dispatches: usize,
}

/// A device's peak rates, from its datasheet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// Name for reports.
    pub name: &'static str,
    /// f32 FLOP/s without tensor cores.
    pub flops: f64,
    /// Memory bandwidth, bytes/s.
    pub bandwidth: f64,
}

/// NVIDIA H100 SXM5 datasheet figures: 67 TFLOP/s f32 (non-tensor), 3.35 TB/s HBM3.
pub const H100_SXM: Peak = Peak { name: "NVIDIA H100 SXM5", flops: 67e12, bandwidth: 3.35e12 };

/// The cost of one inner step of pi with `shape` on `batch` samples.
pub fn inner_step(shape: &Shape, batch: usize) -> StepCost {
    let b = batch as f64;
    let agents = (shape.outputs() - 1) as f64;
    let dim = shape.inputs() as f64;
    let params = shape.parameters() as f64;
    let mut floats = 0.0;
    let mut macs = 0.0;
    let mut dispatches = 0;
    // gather: indices, rows read, rows written
    floats += b + 2.0 * b * dim;
    dispatches += 1;
    for l in 0..shape.layers() {
        let (i, o) = shape.layer(l);
        let (i, o) = (i as f64, o as f64);
        floats += b * i + i * o + o + b * o; // forward
        floats += b * i + b * o + i * o; // dW
        floats += b * o + o; // db
        macs += 2.0 * b * i * o;
        dispatches += 3;
        if l > 0 {
            floats += b * o + i * o + b * i + b * i; // dX with its ReLU mask
            macs += b * i * o;
            dispatches += 1;
        }
    }
    floats += b * (agents + 1.0) + b + b * (3.0 * agents + 1.0) + b * (2.0 * agents + 4.0); // head
    floats += b + 1.0; // penalty
    floats += b * (2.0 * agents + 2.0) + 2.0 * b + 1.0 + b * (agents + 1.0); // combine
    floats += 3.0 * params; // sgd
    floats += 2.0; // advance
    dispatches += 5;
    StepCost { flops: 2.0 * macs, bytes: 4.0 * floats, dispatches }
}

impl StepCost {
    /// The larger of the compute and the memory time on `peak`, in seconds.
    pub fn floor(&self, peak: &Peak) -> f64 {
        (self.flops / peak.flops).max(self.bytes / peak.bandwidth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_matches_the_cpu_trainers_flops_and_the_recorded_dispatches() {
        let shape = Shape::new(&[64, 256, 256, 256, 4]);
        let cost = inner_step(&shape, 256);
        // the CPU trainer's count for the same step: B (3 F_pi - first layer) multiply-adds
        let f = shape.forward_macs() as f64;
        assert_eq!(cost.flops, 2.0 * 256.0 * (3.0 * f - 64.0 * 256.0));
        assert_eq!(cost.dispatches, 21);
        // worked out by hand in the README's performance section: 2,465,816 f32/u32 values
        assert_eq!(cost.bytes, 4.0 * 2_465_816.0);
        let floor = cost.floor(&H100_SXM);
        assert!((floor - cost.flops / 67e12).abs() < 1e-12, "compute-bound on an H100: {floor}");
    }
}

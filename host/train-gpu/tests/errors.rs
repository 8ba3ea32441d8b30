//! The GPU path's failures are clear errors, not panics or silent fallbacks.
#![allow(clippy::expect_used, clippy::panic, reason = "tests")]

use sbd_train_gpu::context::{Gpu, adapters};
use sbd_train_gpu::{AdapterChoice, GpuError};

#[test]
fn asking_for_a_discrete_gpu_where_there_is_none_says_so() {
    let discrete = adapters().iter().any(|a| a.discrete);
    match Gpu::open(AdapterChoice::DiscreteOnly) {
        Ok(gpu) => {
            assert!(discrete && gpu.adapter.discrete, "opened a non-discrete adapter: {}", gpu.adapter)
        }
        Err(GpuError::NoAdapter(message)) => {
            assert!(!discrete, "a discrete GPU exists but was not opened");
            assert!(
                message.contains("no discrete Vulkan GPU") && message.contains("--backend gpu"),
                "{message}"
            );
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[test]
fn a_buffer_over_the_device_limit_is_refused_with_its_size() {
    if !sbd_train_gpu::testing::gpu_or_skip("a_buffer_over_the_device_limit_is_refused_with_its_size") {
        return;
    }
    let gpu = Gpu::open(AdapterChoice::Any).expect("a Vulkan adapter (install mesa-vulkan-drivers)");
    let floats = usize::try_from(gpu.max_buffer() / 4 + 1).expect("fits");
    match gpu.zeros("an oversized activation buffer", floats) {
        Err(GpuError::TooLarge { what, bytes, limit }) => {
            assert_eq!(what, "an oversized activation buffer");
            assert!(bytes > limit);
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("allocated past the device limit"),
    }
}

#[test]
fn a_lost_device_is_reported_on_the_next_use() {
    if !sbd_train_gpu::testing::gpu_or_skip("a_lost_device_is_reported_on_the_next_use") {
        return;
    }
    let gpu = Gpu::open(AdapterChoice::Any).expect("a Vulkan adapter (install mesa-vulkan-drivers)");
    let buffer = gpu.zeros("x", 16).expect("buffer");
    gpu.device.destroy();
    let _ = gpu.device.poll(wgpu::PollType::Wait { submission_index: None, timeout: None });
    match gpu.read(&[(&buffer, 16)]) {
        Err(GpuError::Lost(message)) => assert!(message.contains("stopped responding"), "{message}"),
        Err(other) => panic!("expected a lost-device error, got: {other}"),
        Ok(_) => panic!("read from a destroyed device"),
    }
}

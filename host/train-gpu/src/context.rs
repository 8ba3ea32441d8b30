//! Choosing an adapter, opening the device, and moving bytes on and off it with clear errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wgpu::util::DeviceExt;

/// Why the GPU path cannot run.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No Vulkan adapter of the requested kind; the message says what to do.
    #[error("{0}")]
    NoAdapter(String),
    /// The adapter refused to open a device.
    #[error("cannot open a device on `{adapter}`: {message}")]
    Device {
        /// Adapter name.
        adapter: String,
        /// The driver's reason.
        message: String,
    },
    /// The device was lost (driver reset, GPU removed, out of resources).
    #[error("the GPU device was lost: {0}")]
    Lost(String),
    /// An allocation did not fit in device memory.
    #[error("out of GPU memory allocating {what} ({bytes} bytes)")]
    OutOfMemory {
        /// What was being allocated.
        what: String,
        /// Its size.
        bytes: u64,
    },
    /// A buffer larger than the device allows.
    #[error("{what} needs {bytes} bytes; this device's largest storage buffer is {limit} bytes")]
    TooLarge {
        /// What was being allocated.
        what: String,
        /// Its size.
        bytes: u64,
        /// The device limit.
        limit: u64,
    },
    /// Waiting for the device, or reading a buffer back, failed.
    #[error("GPU operation failed: {0}")]
    Operation(String),
}

impl From<GpuError> for sbd_train::TrainError {
    fn from(e: GpuError) -> Self {
        sbd_train::TrainError::Device(e.to_string())
    }
}

/// Which adapter to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterChoice {
    /// Any Vulkan adapter, a discrete GPU first, then integrated, virtual, software (llvmpipe).
    Any,
    /// Only a discrete GPU.
    DiscreteOnly,
}

/// What runs the kernels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Graphics backend (Vulkan).
    pub backend: String,
    /// Device type: discrete, integrated, virtual, CPU.
    pub device_type: String,
    /// Adapter name.
    pub name: String,
    /// Driver and its version.
    pub driver: String,
    /// Whether it is a discrete GPU.
    pub discrete: bool,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {} ({})", self.backend, self.device_type, self.name, self.driver)
    }
}

/// An open device and its queue.
pub struct Gpu {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// What it is.
    pub adapter: AdapterSummary,
    lost: Arc<AtomicBool>,
    max_buffer: u64,
}

fn rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Lists the Vulkan adapters of this machine.
pub fn adapters() -> Vec<AdapterSummary> {
    let instance = instance();
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN)).iter().map(summary).collect()
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    })
}

fn summary(adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    AdapterSummary {
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        name: info.name.clone(),
        driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        discrete: info.device_type == wgpu::DeviceType::DiscreteGpu,
    }
}

impl Gpu {
    /// Opens the best adapter allowed by `choice`.
    pub fn open(choice: AdapterChoice) -> Result<Gpu, GpuError> {
        let instance = instance();
        let mut candidates = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
        candidates.sort_by_key(|a| rank(a.get_info().device_type));
        let adapter = candidates
            .into_iter()
            .find(|a| choice == AdapterChoice::Any || a.get_info().device_type == wgpu::DeviceType::DiscreteGpu)
            .ok_or_else(|| {
                GpuError::NoAdapter(match choice {
                    AdapterChoice::Any => "no Vulkan adapter found: install a GPU driver with Vulkan, or on Debian \
                                           `mesa-vulkan-drivers` for the CPU implementation (llvmpipe); or train with \
                                           --backend cpu"
                        .into(),
                    AdapterChoice::DiscreteOnly => "no discrete Vulkan GPU; integrated and software adapters \
                                                    (llvmpipe) are used only with --backend gpu"
                        .into(),
                })
            })?;
        let summary = summary(&adapter);
        let limits = adapter.limits();
        // the largest buffer the trainer allocates is the split's states; ask for all the
        // adapter offers so large splits fit where the hardware allows
        let required_limits = wgpu::Limits {
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            ..wgpu::Limits::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("sbd-train"),
            required_limits,
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device { adapter: summary.name.clone(), message: e.to_string() })?;
        let lost = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&lost);
        device.set_device_lost_callback(move |_, _| flag.store(true, Ordering::SeqCst));
        let max_buffer = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        Ok(Gpu { device, queue, adapter: summary, lost, max_buffer })
    }

    /// The largest storage buffer this device allows, in bytes.
    pub fn max_buffer(&self) -> u64 {
        self.max_buffer
    }

    /// Fails if the device has been lost.
    pub fn check(&self) -> Result<(), GpuError> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(GpuError::Lost(format!("`{}` stopped responding", self.adapter.name)));
        }
        Ok(())
    }

    fn allocate(
        &self,
        what: &str,
        bytes: u64,
        make: impl FnOnce() -> wgpu::Buffer,
    ) -> Result<wgpu::Buffer, GpuError> {
        if bytes > self.max_buffer {
            return Err(GpuError::TooLarge { what: what.into(), bytes, limit: self.max_buffer });
        }
        let memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let buffer = make();
        let invalid = pollster::block_on(validation.pop());
        let oom = pollster::block_on(memory.pop());
        if oom.is_some() {
            return Err(GpuError::OutOfMemory { what: what.into(), bytes });
        }
        if let Some(e) = invalid {
            return Err(GpuError::Operation(format!("allocating {what}: {e}")));
        }
        self.check()?;
        Ok(buffer)
    }

    /// A storage buffer holding `data` (at least 4 bytes: bindings cannot be empty).
    pub fn storage<T: bytemuck::Pod>(&self, what: &str, data: &[T]) -> Result<wgpu::Buffer, GpuError> {
        let mut bytes = bytemuck::cast_slice::<T, u8>(data).to_vec();
        bytes.resize(bytes.len().max(4), 0);
        self.allocate(what, bytes.len() as u64, || {
            self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(what),
                contents: &bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            })
        })
    }

    /// A zeroed storage buffer of `floats` f32 values.
    pub fn zeros(&self, what: &str, floats: usize) -> Result<wgpu::Buffer, GpuError> {
        let bytes = (floats.max(1) * 4) as u64;
        self.allocate(what, bytes, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        })
    }

    /// A uniform buffer holding `data`.
    pub fn uniform<T: bytemuck::Pod>(&self, what: &str, data: &T) -> Result<wgpu::Buffer, GpuError> {
        let bytes = bytemuck::bytes_of(data);
        self.allocate(what, bytes.len() as u64, || {
            self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(what),
                contents: bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            })
        })
    }

    /// Overwrites the start of `buffer` with `data`.
    pub fn write<T: bytemuck::Pod>(&self, buffer: &wgpu::Buffer, data: &[T]) {
        self.queue.write_buffer(buffer, 0, bytemuck::cast_slice(data));
    }

    /// Copies `floats` f32 values from each buffer back to the host, in one submission.
    pub fn read(&self, buffers: &[(&wgpu::Buffer, usize)]) -> Result<Vec<Vec<f32>>, GpuError> {
        self.check()?;
        let mut encoder =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("read") });
        let mut staging = Vec::with_capacity(buffers.len());
        for &(buffer, floats) in buffers {
            let bytes = (floats.max(1) * 4) as u64;
            let target = self.allocate("read-back staging buffer", bytes, || {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("staging"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })?;
            encoder.copy_buffer_to_buffer(buffer, 0, &target, 0, bytes);
            staging.push((target, floats));
        }
        self.queue.submit([encoder.finish()]);
        let (sender, receiver) = std::sync::mpsc::channel();
        for (index, (target, _)) in staging.iter().enumerate() {
            let sender = sender.clone();
            target.map_async(wgpu::MapMode::Read, .., move |result| {
                let _ = sender.send((index, result));
            });
        }
        self.wait()?;
        for _ in 0..staging.len() {
            match receiver.recv() {
                Ok((_, Ok(()))) => {}
                Ok((index, Err(e))) => {
                    return Err(GpuError::Operation(format!("mapping read-back buffer {index}: {e}")));
                }
                Err(_) => return Err(GpuError::Operation("a read-back never completed".into())),
            }
        }
        let mut out = Vec::with_capacity(staging.len());
        for (target, floats) in &staging {
            let view = target.get_mapped_range(..).map_err(|e| GpuError::Operation(e.to_string()))?;
            out.push(bytemuck::cast_slice::<u8, f32>(&view)[..*floats].to_vec());
            drop(view);
            target.unmap();
        }
        Ok(out)
    }

    /// Blocks until the queue is idle.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::Wait { submission_index: None, timeout: None })
            .map_err(|e| GpuError::Operation(e.to_string()))?;
        self.check()
    }
}

//! GPU access through wgpu. For now: finding adapters, honouring `WGPU_BACKEND` and
//! `WGPU_ADAPTER_NAME`, so a user can check which device the GPU stage would run on (lavapipe
//! on machines without a GPU). The precision-trace kernels build on this.

/// One adapter wgpu can see.
#[derive(Debug, Clone)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

/// Every adapter of the backends allowed by `WGPU_BACKEND` (all by default).
pub fn list_adapters() -> Vec<AdapterSummary> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    pollster::block_on(instance.enumerate_adapters(backends))
        .into_iter()
        .map(|a| {
            let info = a.get_info();
            AdapterSummary {
                name: info.name,
                backend: format!("{:?}", info.backend),
                device_type: format!("{:?}", info.device_type),
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_string(),
            }
        })
        .collect()
}

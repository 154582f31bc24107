//! Facts about the machine that an image records and a restore checks.

use stasis_image::Host;

/// Describes this machine; `xsave_size` is the XSAVE buffer size read from
/// the dumped threads.
pub fn describe(xsave_size: u32) -> Host {
    let uts = nix::sys::utsname::uname().ok();
    let field = |get: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uts.as_ref()
            .map(|u| get(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    Host {
        kernel_release: field(|u| u.release()),
        machine: field(|u| u.machine()),
        hostname: field(|u| u.nodename()),
        page_size: crate::PAGE_SIZE,
        cpu_features: cpu_features(),
        xsave_size,
    }
}

/// CPU feature flags of the first processor in /proc/cpuinfo, sorted.
pub fn cpu_features() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut flags: Vec<String> = text
        .lines()
        .find_map(|line| line.strip_prefix("flags"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, list)| list.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    flags.sort();
    flags
}

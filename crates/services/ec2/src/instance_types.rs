//! DescribeInstanceTypes for the common families. The figures are AWS's (vCPUs
//! and memory); they will become each instance's CPU quota and memory limit.

use crate::filters::{listing, strings, Filters};
use nimbus_core::AwsError;
use serde_json::{json, Value};

/// (type, vCPUs, memory MiB, burstable, nitro)
const TYPES: &[(&str, u32, u64, bool, bool)] = &[
    ("t2.nano", 1, 512, true, false),
    ("t2.micro", 1, 1024, true, false),
    ("t2.small", 1, 2048, true, false),
    ("t2.medium", 2, 4096, true, false),
    ("t2.large", 2, 8192, true, false),
    ("t2.xlarge", 4, 16384, true, false),
    ("t2.2xlarge", 8, 32768, true, false),
    ("t3.nano", 2, 512, true, true),
    ("t3.micro", 2, 1024, true, true),
    ("t3.small", 2, 2048, true, true),
    ("t3.medium", 2, 4096, true, true),
    ("t3.large", 2, 8192, true, true),
    ("t3.xlarge", 4, 16384, true, true),
    ("t3.2xlarge", 8, 32768, true, true),
    ("m5.large", 2, 8192, false, true),
    ("m5.xlarge", 4, 16384, false, true),
    ("m5.2xlarge", 8, 32768, false, true),
    ("m5.4xlarge", 16, 65536, false, true),
    ("c5.large", 2, 4096, false, true),
    ("c5.xlarge", 4, 8192, false, true),
    ("c5.2xlarge", 8, 16384, false, true),
    ("c5.4xlarge", 16, 32768, false, true),
    ("r5.large", 2, 16384, false, true),
    ("r5.xlarge", 4, 32768, false, true),
    ("r5.2xlarge", 8, 65536, false, true),
    ("r5.4xlarge", 16, 131072, false, true),
];

/// vCPUs and memory (MiB) of an instance type, when nimbus knows it.
pub fn limits(instance_type: &str) -> Option<(u32, u64)> {
    TYPES
        .iter()
        .find(|(t, ..)| *t == instance_type)
        .map(|(_, cpus, mem, ..)| (*cpus, *mem))
}

fn value(t: &(&str, u32, u64, bool, bool)) -> Value {
    let (name, cpus, mem, burst, nitro) = *t;
    let threads = if cpus > 1 { 2 } else { 1 };
    json!({
        "InstanceType": name,
        "CurrentGeneration": true,
        "FreeTierEligible": matches!(name, "t2.micro" | "t3.micro"),
        "SupportedUsageClasses": ["on-demand", "spot"],
        "SupportedRootDeviceTypes": ["ebs"],
        "SupportedVirtualizationTypes": ["hvm"],
        "BareMetal": false,
        "Hypervisor": if nitro { "nitro" } else { "xen" },
        "ProcessorInfo": {"SupportedArchitectures": ["x86_64"], "SustainedClockSpeedInGhz": 2.5},
        "VCpuInfo": {"DefaultVCpus": cpus, "DefaultCores": cpus / threads, "DefaultThreadsPerCore": threads},
        "MemoryInfo": {"SizeInMiB": mem},
        "InstanceStorageSupported": false,
        "EbsInfo": {"EbsOptimizedSupport": if nitro { "default" } else { "unsupported" }},
        "NetworkInfo": {"NetworkPerformance": "Up to 5 Gigabit", "MaximumNetworkInterfaces": 3, "Ipv4AddressesPerInterface": 10},
        "BurstablePerformanceSupported": burst,
        "AutoRecoverySupported": true,
    })
}

pub fn describe(input: &Value) -> Result<Value, AwsError> {
    let wanted = strings(input, "InstanceTypes");
    let unknown: Vec<&String> = wanted.iter().filter(|w| limits(w).is_none()).collect();
    if !unknown.is_empty() {
        let list: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        return Err(AwsError::new(
            "InvalidInstanceType",
            format!(
                "The following supplied instance types do not exist: [{}]",
                list.join(", ")
            ),
        ));
    }
    let filters = Filters::from_input(input);
    let mut out = Vec::new();
    for t in TYPES {
        let (name, cpus, mem, burst, _) = *t;
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let ok = filters.matches(&[], |f| match f {
            "instance-type" => Some(vec![name.to_string()]),
            "vcpu-info.default-vcpus" => Some(vec![cpus.to_string()]),
            "memory-info.size-in-mib" => Some(vec![mem.to_string()]),
            "current-generation" => Some(vec!["true".to_string()]),
            "burstable-performance-supported" => Some(vec![burst.to_string()]),
            "processor-info.supported-architecture" => Some(vec!["x86_64".to_string()]),
            _ => None,
        })?;
        if ok {
            out.push(value(t));
        }
    }
    if let Some(max) = input.get("MaxResults").and_then(Value::as_i64) {
        if !(5..=100).contains(&max) {
            return Err(AwsError::new(
                "InvalidParameterValue",
                format!("Value ( {max} ) for parameter maxResults is invalid. Expecting a value between 5 and 100."),
            ));
        }
    }
    listing("InstanceTypes", out, input, None)
}

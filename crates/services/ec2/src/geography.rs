//! The regions and availability zones nimbus presents, as AWS names them.

/// (region, zone-id prefix, number of zones)
const REGIONS: &[(&str, &str, u8)] = &[
    ("us-east-1", "use1", 6),
    ("us-east-2", "use2", 3),
    ("us-west-1", "usw1", 2),
    ("us-west-2", "usw2", 4),
    ("ca-central-1", "cac1", 3),
    ("eu-west-1", "euw1", 3),
    ("eu-west-2", "euw2", 3),
    ("eu-west-3", "euw3", 3),
    ("eu-central-1", "euc1", 3),
    ("eu-north-1", "eun1", 3),
    ("ap-south-1", "aps1", 3),
    ("ap-northeast-1", "apne1", 3),
    ("ap-northeast-2", "apne2", 4),
    ("ap-northeast-3", "apne3", 3),
    ("ap-southeast-1", "apse1", 3),
    ("ap-southeast-2", "apse2", 3),
    ("sa-east-1", "sae1", 3),
];

pub fn regions() -> impl Iterator<Item = &'static str> {
    REGIONS.iter().map(|(r, _, _)| *r)
}

pub fn is_region(name: &str) -> bool {
    REGIONS.iter().any(|(r, _, _)| *r == name)
}

/// (zone name, zone id) of a region; unknown regions get three zones.
pub fn zones(region: &str) -> Vec<(String, String)> {
    let (prefix, count) = REGIONS
        .iter()
        .find(|(r, _, _)| *r == region)
        .map(|(_, p, n)| (p.to_string(), *n))
        .unwrap_or_else(|| (region.replace('-', ""), 3));
    (0..count)
        .map(|i| {
            let letter = (b'a' + i) as char;
            (format!("{region}{letter}"), format!("{prefix}-az{}", i + 1))
        })
        .collect()
}

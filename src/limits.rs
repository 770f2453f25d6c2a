//! Connection limits: how many streams the server holds at once, in all and
//! per client address. A stream holds a [`Permit`] for as long as it lives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The configured limits and the current counts.
#[derive(Debug, Default)]
pub struct Limits {
    max_total: Option<u64>,
    max_per_ip: Option<u64>,
    total: AtomicU64,
    per_ip: Mutex<HashMap<IpAddr, u64>>,
}

/// Which limit refused a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `maxConnections`: the server is full (503).
    Total,
    /// `maxConnectionsPerIp`: this address holds too many streams (429).
    PerIp,
}

impl Limits {
    /// Limits with these maxima; `None` is unlimited.
    pub fn new(max_total: Option<u64>, max_per_ip: Option<u64>) -> Arc<Self> {
        Arc::new(Limits {
            max_total,
            max_per_ip,
            ..Limits::default()
        })
    }

    /// Takes a slot for a stream from `ip` (`None` when no limit is set, so
    /// unlimited servers keep no per-address table), or says which limit is
    /// reached. An unspecified address (`0.0.0.0`: a fetch-style handler
    /// that does not tell who the client is) counts only against the total.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Option<Permit>, Refusal> {
        if self.max_total.is_none() && self.max_per_ip.is_none() {
            return Ok(None);
        }
        let mut per_ip = crate::sync::lock(&self.per_ip);
        if let Some(max) = self.max_total {
            if self.total.load(Ordering::Relaxed) >= max {
                return Err(Refusal::Total);
            }
        }
        let count = per_ip.entry(ip).or_insert(0);
        if let (Some(max), false) = (self.max_per_ip, ip.is_unspecified()) {
            if *count >= max {
                return Err(Refusal::PerIp);
            }
        }
        *count += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(Some(Permit {
            limits: Arc::clone(self),
            ip,
        }))
    }
}

/// One stream's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut per_ip = crate::sync::lock(&self.limits.per_ip);
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.limits.total.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_beyond_their_maxima_and_free_on_drop() {
        let limits = Limits::new(Some(3), Some(2));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let p1 = limits.acquire(a).unwrap();
        let _p2 = limits.acquire(a).unwrap();
        assert_eq!(limits.acquire(a).unwrap_err(), Refusal::PerIp);
        let _p3 = limits.acquire(b).unwrap();
        assert_eq!(limits.acquire(b).unwrap_err(), Refusal::Total);
        drop(p1);
        assert!(limits.acquire(a).unwrap().is_some());
        let anyone: IpAddr = "0.0.0.0".parse().unwrap();
        let wide = Limits::new(Some(3), Some(1));
        let _q1 = wide.acquire(anyone).unwrap();
        let _q2 = wide.acquire(anyone).unwrap();
        assert!(Limits::new(None, None).acquire(a).unwrap().is_none());
    }
}

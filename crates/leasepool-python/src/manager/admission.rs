//! The admission-control arguments: the constructor's `max_waiters`, `owner_limit`,
//! `fair_share` and `reserved_pools` into the engine's [`AdmissionPolicy`], and a
//! request's `owner`, `priority` and `reservation` into its [`Tenant`]. The rules
//! (limits, ranking, reservations) are the engine's; this module only translates.

use std::hash::{Hash, Hasher};

use leasepool::admission::OwnerKey;
use leasepool::{AdmissionPolicy, Tenant};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyMapping, PyString};

/// The admission policy and the names of its reserved classes (by class id).
pub(super) struct Admission {
    pub(super) policy: AdmissionPolicy,
    pub(super) classes: Vec<String>,
}

impl Admission {
    /// Checks the constructor's admission arguments' types and ranges; the engine
    /// checks them against `max_pools` when the manager is built.
    pub(super) fn check(
        max_waiters: Option<&Bound<'_, PyAny>>,
        owner_limit: Option<&Bound<'_, PyAny>>,
        fair_share: Option<&Bound<'_, PyAny>>,
        reserved_pools: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let max_waiters = optional_whole("max_waiters", max_waiters, 0)?;
        let owner_limit = optional_whole("owner_limit", owner_limit, 1)?;
        let fair_share = match fair_share {
            None => false,
            Some(value) => value
                .cast::<PyBool>()
                .map_err(|_| PyTypeError::new_err("fair_share must be a bool"))?
                .is_true(),
        };
        let mut policy = AdmissionPolicy::default()
            .max_waiters(max_waiters)
            .owner_limit(owner_limit)
            .fair_share(fair_share);
        let mut classes = Vec::new();
        if let Some(reserved) = reserved_pools.filter(|value| !value.is_none()) {
            let reserved = reserved.cast::<PyMapping>().map_err(|_| {
                PyTypeError::new_err("reserved_pools must be a mapping of class name to pool count")
            })?;
            for item in reserved.items()?.iter() {
                let (name, pools): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
                let name = name
                    .cast::<PyString>()
                    .map_err(|_| PyTypeError::new_err("reserved_pools keys must be str"))?
                    .to_string();
                let pools =
                    optional_whole("reserved_pools values", Some(&pools), 1)?.unwrap_or_default();
                policy = policy.reserve(pools);
                classes.push(name);
            }
        }
        Ok(Self { policy, classes })
    }

    /// The [`Tenant`] of a request: its owner (keyed only when the policy needs
    /// owners), its priority and the reserved class it names.
    pub(super) fn tenant(
        &self,
        owner: &Bound<'_, PyAny>,
        priority: &Bound<'_, PyAny>,
        reservation: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Tenant> {
        if priority.is_instance_of::<PyBool>() {
            return Err(PyTypeError::new_err("priority must be an int"));
        }
        let priority: i32 = priority
            .extract::<i64>()
            .map_err(|_| PyTypeError::new_err("priority must be an int"))?
            .try_into()
            .map_err(|_| PyValueError::new_err("priority must fit in 32 bits"))?;
        let class = match reservation.filter(|value| !value.is_none()) {
            None => None,
            Some(name) => Some(self.class_of(name)?),
        };
        let owner = if self.policy.tracks_owners() {
            owner_key(owner)?
        } else {
            None
        };
        Ok(Tenant {
            owner,
            priority,
            class,
        })
    }

    fn class_of(&self, name: &Bound<'_, PyAny>) -> PyResult<usize> {
        let name = name
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("reservation must be a str or None"))?
            .to_cow()?;
        self.classes
            .iter()
            .position(|class| *class == name)
            .ok_or_else(|| {
                let known: Vec<String> = self.classes.iter().map(|c| format!("'{c}'")).collect();
                PyValueError::new_err(format!(
                    "unknown reservation '{name}'; this manager reserves pools for [{}]",
                    known.join(", ")
                ))
            })
    }
}

/// `None`, or a whole number (not a bool) `>= minimum`.
pub(super) fn optional_whole(
    name: &str,
    value: Option<&Bound<'_, PyAny>>,
    minimum: usize,
) -> PyResult<Option<usize>> {
    let Some(value) = value.filter(|value| !value.is_none()) else {
        return Ok(None);
    };
    let wrong = || PyValueError::new_err(format!("{name} must be None or an integer >= {minimum}"));
    if value.is_instance_of::<PyBool>() {
        return Err(wrong());
    }
    let number: i64 = value.extract().map_err(|_| wrong())?;
    match usize::try_from(number) {
        Ok(number) if number >= minimum => Ok(Some(number)),
        _ => Err(wrong()),
    }
}

/// Owners are told apart by their text (`str(owner)`); `None` is anonymous.
fn owner_key(owner: &Bound<'_, PyAny>) -> PyResult<Option<OwnerKey>> {
    Ok(owner_label(owner)?.map(|(key, _)| key))
}

/// An owner's key and its text (`str(owner)`); `None` for the anonymous owner.
pub(super) fn owner_label(owner: &Bound<'_, PyAny>) -> PyResult<Option<(OwnerKey, String)>> {
    if owner.is_none() {
        return Ok(None);
    }
    let text = match owner.cast::<PyString>() {
        Ok(text) => text.to_cow()?.into_owned(),
        Err(_) => owner.str()?.to_cow()?.into_owned(),
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    Ok(Some((hasher.finish(), text)))
}

impl super::ManagerCore {
    /// A request from the arguments of `acquire()`/`run()`: its [`Tenant`], and what
    /// the manager observes of it (the owner's metrics label, the acquire site).
    pub(super) fn request(
        &self,
        py: Python<'_>,
        lease_seconds: Option<f64>,
        owner: Py<PyAny>,
        priority: Option<&Bound<'_, PyAny>>,
        reservation: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<super::Request> {
        let mut tenant = self.tenant(py, &owner, priority, reservation)?;
        let label = if self.cfg.observe.owners > 0 {
            owner_label(owner.bind(py))?
        } else {
            None
        };
        if let Some((key, _)) = &label {
            // Only counted by the admission policy if it tracks owners.
            tenant.owner = Some(*key);
        }
        let site = if self.cfg.observe.track_site {
            super::observe::AcquireSite::capture(py)
        } else {
            None
        };
        Ok(super::Request {
            lease_seconds,
            owner,
            tenant,
            label,
            site,
        })
    }

    /// The [`Tenant`] of a request to this manager (see [`Admission::tenant`]);
    /// `priority` defaults to 0.
    fn tenant(
        &self,
        py: Python<'_>,
        owner: &Py<PyAny>,
        priority: Option<&Bound<'_, PyAny>>,
        reservation: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Tenant> {
        let priority = priority.filter(|value| !value.is_none());
        let reservation = reservation.filter(|value| !value.is_none());
        let admission = &self.cfg.admission;
        // The common call names neither: nothing to convert (the hot path).
        if priority.is_none() && reservation.is_none() && !admission.policy.tracks_owners() {
            return Ok(Tenant::default());
        }
        let zero = 0_i32.into_pyobject(py)?.into_any();
        admission.tenant(owner.bind(py), priority.unwrap_or(&zero), reservation)
    }

    /// `LeaseAcquireTimeoutError(message)` with the engine's estimate of when
    /// capacity is likely for a request of this kind (`slot`: a one-call request).
    pub(crate) fn timeout_error(
        &self,
        py: Python<'_>,
        message: String,
        slot: bool,
        lease_seconds: f64,
    ) -> PyErr {
        let retry_after = crate::sync::lock(&self.engine).retry_after(slot, lease_seconds);
        crate::errors::with_retry_after(super::acquire_timeout_error(py, message), py, retry_after)
    }
}

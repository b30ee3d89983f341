//! Built-in adaptive sizing for the tokio front end (see [`crate::autoscale`]).

use super::{lock, LeaseManager};
use crate::autoscale::{AutoScalePolicy, AutoScaleView};

impl<P: Clone + Send + 'static> LeaseManager<P> {
    /// Lets the engine set the target pool count from observed demand, acquire waits
    /// and idle windows ([`crate::autoscale`]); [`set_load`](Self::set_load)'s target
    /// becomes a floor. The controller decides at the end of each window, when
    /// [`check`](Self::check) runs ([`run_checker`](Self::run_checker) wakes for it).
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use leasepool::autoscale::AutoScalePolicy;
    /// use leasepool::tokio::LeaseManager;
    /// use leasepool::PoolLimits;
    ///
    /// let limits = PoolLimits::builder(8).build().unwrap();
    /// let manager = LeaseManager::new(limits, Duration::from_secs(30), |seq| seq)
    ///     .with_autoscale(AutoScalePolicy::default());
    /// let (a, b) = (manager.acquire().await.unwrap(), manager.acquire().await.unwrap());
    /// assert_eq!(manager.autoscale().unwrap().target, 2);
    /// # drop((a, b));
    /// # }
    /// ```
    #[must_use]
    pub fn with_autoscale(self, policy: AutoScalePolicy) -> Self {
        lock(&self.shared.engine).enable_autoscale(policy);
        self
    }

    /// What the autoscaler saw and decided (`None` without
    /// [`with_autoscale`](Self::with_autoscale)).
    #[must_use]
    pub fn autoscale(&self) -> Option<AutoScaleView> {
        lock(&self.shared.engine).autoscale()
    }
}

//! Fault tolerance (seed section 5): network interruptions and Redis restarts.

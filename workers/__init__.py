"""Workers: RQ jobs that pose queued frames and run the analytics, and the processes that run them."""

"""arq entry point: ``arq worker.WorkerSettings`` (or ``handoffs worker``)."""

from __future__ import annotations

from handoffs.config import get_settings
from handoffs.jobs.worker import worker_options
from handoffs.logs import quiet_routine_logs

quiet_routine_logs()
_options = worker_options(get_settings())


class WorkerSettings:
    """Read by arq; built from the environment once."""

    functions = _options["functions"]
    cron_jobs = _options["cron_jobs"]
    on_startup = _options["on_startup"]
    on_shutdown = _options["on_shutdown"]
    on_job_start = _options["on_job_start"]
    redis_pool = _options["redis_pool"]
    max_jobs = _options["max_jobs"]
    job_timeout = _options["job_timeout"]
    max_tries = _options["max_tries"]
    keep_result = _options["keep_result"]
    health_check_interval = _options["health_check_interval"]

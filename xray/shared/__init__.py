"""What the SDK and the API share: the vocabularies, the config and the wire schema.

Example:
    >>> from xray.shared import StepType, load_api_config
    >>> StepType.FILTER.value
    'filter'
"""

from xray.shared._config import (
    CONFIG_ENV_VAR,
    CONFIG_FILENAME,
    DEFAULT_DATABASE_URL,
    DEFAULT_REDACT_KEYS,
    ENV_OVERRIDES,
    APIConfig,
    ConfigError,
    ConfigNotFoundError,
    SDKConfig,
    XRayConfig,
    find_config_file,
    load_api_config,
    load_config,
    load_sdk_config,
)
from xray.shared._database_url import DatabaseURL, parse_database_url
from xray.shared._enums import Decision, DetailLevel, RunStatus, StepStatus, StepType
from xray.shared._wire import (
    BatchIn,
    BatchResult,
    DecisionColumnsIn,
    DecisionIn,
    DecisionOut,
    ErrorInfo,
    Page,
    PipelineOut,
    RunDetailOut,
    RunIn,
    RunOut,
    StepIn,
    StepOut,
)

__all__ = [
    "CONFIG_ENV_VAR",
    "CONFIG_FILENAME",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_REDACT_KEYS",
    "ENV_OVERRIDES",
    "APIConfig",
    "BatchIn",
    "BatchResult",
    "ConfigError",
    "ConfigNotFoundError",
    "DatabaseURL",
    "Decision",
    "DecisionColumnsIn",
    "DecisionIn",
    "DecisionOut",
    "DetailLevel",
    "ErrorInfo",
    "Page",
    "PipelineOut",
    "RunDetailOut",
    "RunIn",
    "RunOut",
    "RunStatus",
    "SDKConfig",
    "StepIn",
    "StepOut",
    "StepStatus",
    "StepType",
    "XRayConfig",
    "find_config_file",
    "load_api_config",
    "load_config",
    "load_sdk_config",
    "parse_database_url",
]

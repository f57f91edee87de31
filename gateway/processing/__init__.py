"""The inbound pipeline's service functions: processing, ack sending and sweeps (tasks call these)."""

from gateway.processing.context import PipelineContext
from gateway.processing.outcome import MessageNotFound, ProcessOutcome
from gateway.processing.service import fail_message, process_message

__all__ = ["MessageNotFound", "PipelineContext", "ProcessOutcome", "fail_message", "process_message"]

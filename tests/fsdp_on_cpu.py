"""Run a script under accelerate's FSDP2 on CPU processes: ``torchrun ... tests/fsdp_on_cpu.py SCRIPT [ARGS]``.

accelerate (1.16) keeps FSDP to accelerator devices: ``accelerate launch --cpu`` drops the FSDP settings, and on CPU
`AcceleratorState` stays MULTI_CPU (DDP) even when given an FSDP plugin. This helper sets the state accelerate sets
on GPUs (distributed type FSDP, the plugin read from the ``FSDP_*`` environment variables that ``accelerate launch``
writes from an FSDP config), so the script runs accelerate's own FSDP2 code (``fully_shard``, sharded
``save_state`` / ``load_state`` through torch.distributed.checkpoint) with torch's gloo backend.
"""

import runpy
import sys

from accelerate import Accelerator, FullyShardedDataParallelPlugin, PartialState
from accelerate.utils import DistributedType

_accelerator_init = Accelerator.__init__


def _init_with_fsdp(self: Accelerator, *args, **kwargs) -> None:
    _accelerator_init(self, *args, **kwargs)
    if self.state.distributed_type == DistributedType.MULTI_CPU:
        self.state.fsdp_plugin = FullyShardedDataParallelPlugin()
        self.state.distributed_type = DistributedType.FSDP
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP  # as AcceleratorState does


if __name__ == "__main__":
    Accelerator.__init__ = _init_with_fsdp
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")

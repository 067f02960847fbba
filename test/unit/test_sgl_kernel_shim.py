import pytest
import torch

from dynasor.srt.cpu_defaults import has_cuda

pytestmark = pytest.mark.skipif(has_cuda(), reason="the stand-in is only installed without CUDA")


def test_assign_req_to_token_pool_writes_each_rows_new_slots():
    from sgl_kernel import assign_req_to_token_pool_cpu

    table = torch.zeros(4, 8, dtype=torch.int32)
    out_cache_loc = torch.tensor([10, 11, 12, 20, 21], dtype=torch.int64)
    assign_req_to_token_pool_cpu(
        torch.tensor([2, 0]), table, torch.tensor([1, 5]), torch.tensor([4, 7]), out_cache_loc, 8
    )
    assert table[2].tolist() == [0, 10, 11, 12, 0, 0, 0, 0]
    assert table[0].tolist() == [0, 0, 0, 0, 0, 20, 21, 0]
    assert table[1].sum() == 0 and table[3].sum() == 0


def test_other_kernels_import_but_fail_loudly():
    import sgl_kernel
    from sgl_kernel import copy_all_layer_kv_cache_cpu  # imported at module level by SGLang on CPU

    with pytest.raises(NotImplementedError, match="copy_all_layer_kv_cache_cpu"):
        copy_all_layer_kv_cache_cpu()
    assert not hasattr(torch.ops.sgl_kernel, "fused_sigmoid_mul_cpu")
    assert sgl_kernel.__version__.endswith("cpushim")

import pytest
import torch

from mmgen.core.cond import Cond


def test_cat_and_map():
    a = Cond(context=torch.ones(2, 3, 4), context_mask=torch.ones(2, 3, dtype=torch.bool))
    b = Cond(context=torch.zeros(1, 3, 4), context_mask=torch.zeros(1, 3, dtype=torch.bool))
    c = Cond.cat([a, b])
    assert c.batch_size == 3 and c.prefix is None
    assert c.context[2].sum() == 0 and c.context_mask[:2].all()
    assert c.map(lambda t: t[:1]).batch_size == 1


def test_bad_conds_raise():
    with pytest.raises(ValueError, match="context must be"):
        Cond(context=torch.ones(2, 3))
    with pytest.raises(ValueError, match="batch size"):
        Cond(context=torch.ones(2, 3, 4), prefix=torch.ones(3, 1, 4))
    with pytest.raises(ValueError, match="context_mask must be"):
        Cond(context=torch.ones(2, 3, 4), context_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="different fields"):
        Cond.cat([Cond(context=torch.ones(1, 1, 1)), Cond(prefix=torch.ones(1, 1, 1))])

"""Adversarial attacks: PGD (l-inf and l2) and FGSM with random start.

All attacks take inputs in [0, 1] of shape (B, C, H, W) and integer labels of shape (B,),
and return adversarial inputs of the same shape inside the eps-ball *and* in [0, 1].

Two things differ from the way many training scripts write PGD, on purpose:

- Gradients are taken with respect to the input only (``torch.autograd.grad``) while the
  model's parameters are frozen, so no weight gradient is ever computed during an attack.
- The model's train/eval mode is set explicitly for the attack (``model_mode``) and every
  module's mode, and every parameter's ``requires_grad``, is restored afterwards, also when
  an exception is raised.

References: Madry et al., ICLR 2018 (PGD, Eq. 2 of Wei et al. 2025); Wong et al., ICLR 2020
(FGSM with random start, "fast AT").  Step sizes follow Table 2 of Wei et al. 2025.
"""

from ._checks import L2_EPS_MAX, LINF_EPS_MAX, MODEL_MODES, NORMS, Attack, ModelMode, Norm
from ._pgd import (FGSMRS, PGD, ascent_direction, attack_mode, default_step_size, fgsm_rs,
                   input_gradient, pgd, project)

__all__ = ["Norm", "NORMS", "ModelMode", "MODEL_MODES", "LINF_EPS_MAX", "L2_EPS_MAX", "Attack",
           "default_step_size", "attack_mode", "input_gradient", "pgd", "fgsm_rs", "PGD",
           "FGSMRS", "ascent_direction", "project"]

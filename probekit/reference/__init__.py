"""Reference pipelines (DESIGN §6): the image U-Net DDPM of Bonnaire et al. (2025) and its CPU
presets — ``config`` (presets), ``unet``, ``diffusion``, ``sample`` (DDIM), ``data``, ``train``,
``handle``, ``sweep``, ``demo``. Nothing is imported here, so that loading the ``celeba`` and
``ddpm`` plugins does not import torch; import the modules you need.
"""

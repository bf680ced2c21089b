"""The core layer the steps are built on: the HIPNN model and its files (:mod:`.model`), elements and crystals
(:mod:`.elements`), the losses of every kind (:mod:`.losses`), batches (:mod:`.batches`), the ASE calculator
(:mod:`.calculator`), prediction and error metrics (:mod:`.predict`, :mod:`.metrics`), the fast training engine's
stacked HIPNN and pair geometry (:mod:`.hipnn_stack`, :mod:`.geometry`), the deployable TorchScript model and its
TorchSim interface (:mod:`.export`, :mod:`.torchsim`) and the MD engines (:mod:`.md`).

Nothing here imports a step (a ``tsmlip <command>`` module); the steps import from here."""

"""GANs on the step-loop trainer: the two-player task and the digits judge that scores samples."""

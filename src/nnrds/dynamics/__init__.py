"""A ResNet as a dynamical system: the Jacobian of its residual function, the spectrum of that Jacobian, and
penalties on it.

The ResNet ``x_{n+1} = x_n + h f(x_n, t_n)`` (:class:`~nnrds.models.ReplicaNet`) is the explicit-Euler
discretization of ``dx/dt = f(x, t)`` with the residual function ``f(x, t) = sigma(W(t) x + b(t))``.
One concept per module:

* :mod:`.jacobian`  -- ``J_n(x_n) = diag(sigma'(W(t_n) x_n + b(t_n))) W(t_n)`` at every replica, layer and sample;
* :mod:`.spectrum`  -- eigenvalues of a batch of Jacobians, the stiffness / explicit-Euler metrics of a spectrum and
  their aggregation to one number per network;
* :mod:`.penalties` -- differentiable penalties on the Jacobian (spectral norm by power iteration, Frobenius norm)
  for :func:`nnrds.train.fit`.

Everything is batched over replicas x layers x samples (no Python loop over samples or layers).
"""

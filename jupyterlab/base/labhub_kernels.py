"""Users' own kernels in a LabHub server.

The hub starts servers with JupyterHub's disable_user_config, so that no file in the user's home
can change the server's settings (authentication, base URL, allowed origins). It does that by
taking the home out of every Jupyter search path, kernels' included: a kernel registered with
`python -m ipykernel install --user` or `IRkernel::installspec(user = TRUE)` was not offered
(JupyterHub issue 4940). KernelSpecManager.kernel_dirs is not configurable (on purpose, upstream);
a KernelSpecManager subclass, named by ServerApp.kernel_spec_manager_class in the image's server
config, is the documented way to change it. This one adds the user's kernels folder alone
(~/.local/share/jupyter/kernels), after the image's: a user's kernel named like one of the
image's does not hide it. Nothing else of the home comes back: not config files, not extensions.
"""

from jupyter_client.kernelspec import KernelSpecManager
from traitlets import default


class UserKernelSpecManager(KernelSpecManager):
    @default("kernel_dirs")
    def _kernel_dirs_default(self) -> list[str]:
        dirs = super()._kernel_dirs_default()
        return dirs if self.user_kernel_dir in dirs else [*dirs, self.user_kernel_dir]

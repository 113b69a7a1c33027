"""Make VTK render without a display: choose the headless OpenGL window before pyvista makes one.

VTK wheels (9.4 and newer) pick the OpenGL window at run time: X first, then EGL, then OSMesa,
each loaded from the system (VTK's "runtime settings" docs, VTK_DEFAULT_OPENGL_WINDOW). Without
a display the X attempt only costs a warning, so when no display is set we name the headless
window ourselves: EGL when a libEGL is installed (Debian: libegl1 libegl-mesa0 libgl1-mesa-dri,
Mesa's software llvmpipe; or the NVIDIA driver's), else OSMesa (Debian: libosmesa6).
"""

from __future__ import annotations

import ctypes.util
import glob
import os
import sys

# Where libglvnd looks for EGL drivers ("vendors"); libEGL without one cannot make a context.
EGL_VENDOR_DIRECTORIES = ("/usr/share/glvnd/egl_vendor.d", "/etc/glvnd/egl_vendor.d")


def has_display() -> bool:
    """Whether a window could be opened (always on macOS and Windows; X or Wayland on Linux)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def configure_offscreen() -> str | None:
    """Select VTK's headless window when there is no display; returns the window class chosen, if any.

    A user's own VTK_DEFAULT_OPENGL_WINDOW always wins.
    """
    if has_display() or "VTK_DEFAULT_OPENGL_WINDOW" in os.environ:
        return os.environ.get("VTK_DEFAULT_OPENGL_WINDOW")
    # A window class whose library is missing crashes VTK (a segfault, no message), so check first.
    if has_egl():
        window = "vtkEGLRenderWindow"
    elif ctypes.util.find_library("OSMesa"):
        window = "vtkOSOpenGLRenderWindow"
    else:
        raise RuntimeError(
            "no display and no headless OpenGL library: install EGL "
            "(apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri) or OSMesa (apt-get install libosmesa6)"
        )
    os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = window
    return window


def has_egl() -> bool:
    """libEGL and at least one EGL driver (Mesa's or NVIDIA's) are installed."""
    if not ctypes.util.find_library("EGL"):
        return False
    if os.environ.get("__EGL_VENDOR_LIBRARY_FILENAMES") or os.environ.get("__EGL_VENDOR_LIBRARY_DIRS"):
        return True
    return any(glob.glob(os.path.join(directory, "*.json")) for directory in EGL_VENDOR_DIRECTORIES)

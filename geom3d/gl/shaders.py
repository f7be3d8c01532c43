"""The GLSL programs of `geom3d.gl`: one vertex and one fragment shader, specialised by #defines
into variants (which outputs, the colour source, flat or smooth normals)."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import GeometryError

__all__ = ["VERTEX_SHADER", "FRAGMENT_SHADER", "ATTACHMENTS", "ATTACHMENT_ORDER", "OUTPUT_DEFINE",
           "OUTPUT_LOCATION", "shader_source", "shader_variant"]

VERTEX_SHADER = """
#version 330
uniform mat4 u_mvp;  // world -> clip, composed in float64 on the CPU
in vec3 in_position;
#ifdef PER_CORNER
in int in_face;           // per-corner arrays: every corner knows its face
in vec3 in_face_normal;
flat out int v_face;
flat out vec3 v_face_normal;
#endif
#ifdef HAS_COLOR
in vec3 in_color;
out vec3 v_color;
#endif
#ifdef HAS_UV
in vec2 in_uv;
out vec2 v_uv;
#endif
#ifdef SMOOTH
in vec3 in_normal;
out vec3 v_normal;
#endif
void main() {
#ifdef PER_CORNER
    v_face = in_face;
    v_face_normal = in_face_normal;
#endif
#ifdef HAS_COLOR
    v_color = in_color;
#endif
#ifdef HAS_UV
    v_uv = in_uv;
#endif
#ifdef SMOOTH
    v_normal = in_normal;
#endif
    gl_Position = u_mvp * vec4(in_position, 1.0);
}
"""

# Camera depth needs no varying: the projection puts the OpenCV camera z in clip w, and
# gl_FragCoord.w = 1 / w_clip. A face is seen from its front (normal towards the camera) exactly
# when it is counter-clockwise in the image, which is clockwise in GL's window since the
# projection puts image row 0 at window row 0: gl_FrontFacing with glFrontFace(GL_CW).
# Face index and face normal come as flat attributes of per-corner vertex arrays (PER_CORNER):
# on llvmpipe that is much cheaper per pixel than gl_PrimitiveID and a texture lookup.
FRAGMENT_SHADER = """
#version 330
uniform mat3 u_rot;          // world -> camera rotation (OpenCV)
uniform mat3 u_normal_out;   // camera frame -> frame of the normal output
uniform sampler2D u_texture;
uniform vec3 u_base_color;
uniform vec3 u_ambient;
uniform vec3 u_light_dir[MAX_LIGHTS];
uniform vec3 u_light_rgb[MAX_LIGHTS];
#ifdef PER_CORNER
flat in int v_face;
flat in vec3 v_face_normal;
#endif
#ifdef HAS_COLOR
in vec3 v_color;
#endif
#ifdef HAS_UV
in vec2 v_uv;
#endif
#ifdef SMOOTH
in vec3 v_normal;
#endif
#ifdef OUT_RGB
layout(location = LOC_RGB) out vec4 f_rgb;
#endif
#ifdef OUT_DEPTH
layout(location = LOC_DEPTH) out float f_depth;
#endif
#ifdef OUT_NORMAL
layout(location = LOC_NORMAL) out vec4 f_normal;
#endif
#ifdef OUT_FACE
layout(location = LOC_FACE) out int f_face;
#endif
void main() {
#ifdef OUT_FACE
#ifdef PER_CORNER
    f_face = v_face + 1;  // 0 is the cleared value: empty
#else
    f_face = gl_PrimitiveID + 1;
#endif
#endif
#ifdef OUT_DEPTH
    f_depth = 1.0 / gl_FragCoord.w;
#endif
#if defined(OUT_RGB) || defined(OUT_NORMAL)
    float side = gl_FrontFacing ? 1.0 : -1.0;  // turn the normal towards the camera
    vec3 n_face = u_rot * v_face_normal;
#ifdef SMOOTH
    vec3 n = u_rot * v_normal;
    float len = length(n);
    n = side * (len > 0.0 ? n / len : n_face);
#else
    vec3 n = side * n_face;
#endif
#endif
#ifdef OUT_NORMAL
    f_normal = vec4(u_normal_out * n, 0.0);
#endif
#ifdef OUT_RGB
#if defined(HAS_UV)
    vec3 base = texture(u_texture, vec2(v_uv.x, 1.0 - v_uv.y)).rgb;
#elif defined(HAS_COLOR)
    vec3 base = v_color;
#else
    vec3 base = u_base_color;
#endif
    vec3 light = u_ambient;
    for (int i = 0; i < NUM_LIGHTS; ++i) {  // a constant count: llvmpipe unrolls it
        light += max(dot(n, u_light_dir[i]), 0.0) * u_light_rgb[i];
    }
    f_rgb = vec4(clamp(base * light, 0.0, 1.0), 1.0);
#endif
}
"""

# attachment formats: (components, dtype) of each output's colour attachment
ATTACHMENTS = {"rgb": (4, "f4"), "depth": (1, "f4"), "normal": (4, "f4"), "face_id": (1, "i4")}
ATTACHMENT_ORDER = ("rgb", "depth", "normal", "face_id")
OUTPUT_DEFINE = {"rgb": "OUT_RGB", "depth": "OUT_DEPTH", "normal": "OUT_NORMAL", "face_id": "OUT_FACE"}
OUTPUT_LOCATION = {"rgb": "LOC_RGB", "depth": "LOC_DEPTH", "normal": "LOC_NORMAL", "face_id": "LOC_FACE"}


def shader_source(template: str, defines: Mapping[str, object]) -> str:
    header = "".join(f"#define {k} {v}\n" for k, v in defines.items())
    first, rest = template.lstrip().split("\n", 1)  # keep #version first
    return f"{first}\n{header}{rest}"


def shader_variant(has_color: bool, has_uv: bool, shading: str, needs_normals: bool) -> tuple:
    """Shader features: PER_CORNER (colour or normals drawn: per-corner arrays), the colour source
    and SMOOTH (interpolated vertex normals)."""
    if shading not in ("flat", "smooth"):
        raise GeometryError(f"shading must be 'flat' or 'smooth', got {shading!r}")
    variant = ["PER_CORNER"] if needs_normals else []
    if has_uv:
        variant.append("HAS_UV")
    elif has_color:
        variant.append("HAS_COLOR")
    if shading == "smooth" and needs_normals:
        variant.append("SMOOTH")
    return tuple(variant)

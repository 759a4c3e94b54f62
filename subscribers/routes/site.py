"""``/``: the built site's home page, or the signup form while there is none.

Every other path the service does not answer is the built site's
(:func:`subscribers.middleware.site_files`, mounted by
:func:`subscribers.web.create_app` after these routes).
"""

from fastapi import APIRouter
from starlette.responses import FileResponse, RedirectResponse, Response

from subscribers.routes.deps import StaticDirDep

router = APIRouter()


@router.get("/", response_class=Response, include_in_schema=False)
@router.head("/", include_in_schema=False)
def home(static_dir: StaticDirDep) -> Response:
    index = static_dir / "index.html" if static_dir else None
    if index is not None and index.is_file():
        return FileResponse(index)
    return RedirectResponse("/subscribe", status_code=303)

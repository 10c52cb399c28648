"""The uploaded file: an upload handler that stops reading a file as soon as it passes
``IMPORTS_MAX_BYTES``, and ``drop_file``, which deletes it once its import is over.

Django streams large uploads to a temporary file but does not limit their size: a
multi-gigabyte upload would be written to disk in full before the import could refuse it. This
handler sits first in ``FILE_UPLOAD_HANDLERS``; once a file's bytes pass the limit it stops the
upload (the rest of the request body is read and dropped, never stored) and marks the request,
so the upload page can say why.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.template.defaultfilters import filesizeformat

from .models import ImportJob


def drop_file(job: ImportJob) -> None:
    """The uploaded file holds personal data: it is deleted once the import is over."""
    if job.file or job.workbook:
        job.file.delete(save=False)
        job.workbook.delete(save=False)
        ImportJob.objects.filter(pk=job.pk).update(file="", workbook="")


def limit_message() -> str:
    return f"The file is larger than the {filesizeformat(settings.IMPORTS_MAX_BYTES)} limit."


class SizeLimitUploadHandler(FileUploadHandler):
    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if start + len(raw_data) > settings.IMPORTS_MAX_BYTES:
            if self.request is not None:
                self.request.upload_too_large = True
            raise StopUpload(connection_reset=False)
        return raw_data  # the next handler stores it

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler returns the file

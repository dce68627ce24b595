"""The EDO registers on the real store: files kept once per content, box passwords never in clear."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from models.db import session_scope
from models.edo import (
    ORIGINAL,
    PRINT_FORM,
    CredentialsKeyMissing,
    EdoBox,
    EdoDocument,
    EdoDocumentVersion,
    EdoFile,
    EdoPackage,
    store_file,
)
from sandbox.synerdocs.emulator import COMPANY


def test_a_box_password_is_stored_encrypted_and_read_with_the_key() -> None:
    key, other = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with session_scope() as session:
        box = EdoBox(
            box_address=COMPANY["box"],
            organization_inn=COMPANY["inn"],
            name=COMPANY["name"],
            login=COMPANY["login"],
            is_default=True,
        )
        box.set_password(COMPANY["password"], key)
        session.add(box)
    with session_scope() as session:
        stored = session.scalars(select(EdoBox)).one()
        assert COMPANY["password"].encode() not in stored.password_encrypted
        assert stored.password(key) == COMPANY["password"]
        with pytest.raises(CredentialsKeyMissing, match="another key"):
            stored.password(other)
        with pytest.raises(CredentialsKeyMissing, match="OBMEN_SYNERDOCS_CREDENTIALS_KEY"):
            stored.password(None)


def test_a_file_is_stored_once_and_versions_point_at_it() -> None:
    original, stamped = b"%PDF-1.7 the application", b"%PDF-1.7 the print form with the stamp"
    with session_scope() as session:
        box = EdoBox(
            box_address="b@synerdocs.ru", organization_inn="3525001232", name="АО «ВОЭК»", login="voek"
        )
        box.set_password("secret", Fernet.generate_key().decode())
        session.add(box)
        session.flush()
        package = EdoPackage(package_key="pkg-1", direction="in", box_id=box.id)
        session.add(package)
        session.flush()
        documents = [
            EdoDocument(
                package_id=package.id,
                position=i,
                local_id=f"d{i}",
                document_type="application",
                title="Заявка",
            )
            for i in range(2)
        ]
        session.add_all(documents)
        session.flush()
        for document in documents:  # the same file in two documents
            digest = store_file(session, original)
            session.add(
                EdoDocumentVersion(
                    document_id=document.id,
                    version=ORIGINAL,
                    file_name="zayavka.pdf",
                    content_type="application/pdf",
                    sha256=digest,
                    size=len(original),
                )
            )
        session.add(
            EdoDocumentVersion(
                document_id=documents[0].id,
                version=PRINT_FORM,
                file_name="zayavka-stamped.pdf",
                content_type="application/pdf",
                sha256=store_file(session, stamped),
                size=len(stamped),
            )
        )
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(EdoFile)) == 2
        versions = session.execute(
            select(EdoDocumentVersion.version, EdoFile.content)
            .join(EdoFile, EdoFile.sha256 == EdoDocumentVersion.sha256)
            .where(EdoDocumentVersion.document_id == documents[0].id)
            .order_by(EdoDocumentVersion.version)
        ).all()
        assert versions == [(ORIGINAL, original), (PRINT_FORM, stamped)]

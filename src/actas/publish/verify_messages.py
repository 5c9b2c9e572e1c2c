"""The strings of the in-browser acta verifier (assets/verify.js) in each site language.

Keys: ``step_<name>`` labels each of the five steps; ``<name>_ok`` is a passed step's detail; ``result_pass`` and
``result_fail`` are the closing sentence; every other key is the reason a step failed (the list item carries it
as ``data-reason``). ``{name}`` placeholders are filled in by verify.js. A mesa page embeds ``MESSAGES[lang]`` as
the ``messages`` member of its verify-data JSON.
"""

from __future__ import annotations

from typing import Final

LANGUAGES: Final = ("en", "es", "pt")

_EN: Final = {
    "step_checkpoint": "Signed checkpoint",
    "step_entry": "Acta in the log",
    "step_inclusion": "Inclusion proof",
    "step_signature": "Device signature",
    "step_enrollment": "Device enrollment",
    "checkpoint_ok": "signed by the election authority; the log holds {size} entries; root hash {root}",
    "entry_ok": "entry {leaf} is the acta of mesa {mesa}, contest {contest}; its leaf hash is {hash}",
    "entry_ok_page": (
        "entry {leaf} is the acta of mesa {mesa}, contest {contest}, with exactly the counts this page shows; "
        "its leaf hash is {hash}"
    ),
    "page_mismatch": "this page shows {field} = {shown}, but the logged acta says {logged}",
    "inclusion_ok": "entry {leaf} is in the signed tree of {size} entries (proof of {length} hashes)",
    "signature_ok": "the acta is signed by device {device}",
    "enrollment_ok": "entry {leaf}: the authority enrolled device {device} for mesa {mesa}",
    "result_pass": "Verified: this acta is in the log the authority signed, and a device enrolled for its mesa "
    "signed it.",
    "result_fail": "Verification failed at the step “{step}”; the reason is given above.",
    "bad_page_data": "the verification data on this page is incomplete or malformed",
    "no_webcrypto": "this browser offers no cryptography to this page (it must be served over HTTPS)",
    "no_ed25519": "this browser cannot check Ed25519 signatures; use an up-to-date browser or the command-line "
    "verifier",
    "bad_authority_key": "the authority key on this page is not a valid key string",
    "fetch_failed": "could not fetch {path} ({detail})",
    "note_malformed": "the checkpoint is not a well-formed signed note",
    "no_signature": "the checkpoint carries no signature by the authority key {key}",
    "duplicate_signature": "the authority key signed the checkpoint more than once",
    "bad_signature": "the authority's signature on the checkpoint does not verify",
    "origin_mismatch": "the checkpoint is for the log {found}, not {origin}",
    "checkpoint_malformed": "the checkpoint's tree size or root hash is malformed",
    "leaf_outside": "entry {leaf} is not in the checkpoint's tree of {size} entries",
    "bundle_malformed": "the entry bundle {path} is malformed",
    "tile_malformed": "the hash tile {path} has the wrong length",
    "entry_not_json": "entry {leaf} is not a JSON object",
    "entry_not_canonical": "entry {leaf} is not in canonical form",
    "wrong_type": "entry {leaf} is of type “{found}”, not “{want}”",
    "wrong_election": "entry {leaf} belongs to another election ({found})",
    "wrong_acta": "entry {leaf} is the acta of mesa {found_mesa}, contest {found_contest}, not of mesa {mesa}, "
    "contest {contest}",
    "proof_malformed": "the inclusion proof does not fit the tree",
    "root_mismatch": "the root hash computed from the entry and the published tiles differs from the checkpoint's",
    "device_mismatch": "the acta names device {found}, but this page shows device {device}",
    "bad_device_key": "the device key {device} is not a valid key string",
    "sig_malformed": "the entry's signature field is malformed or not where the canonical form puts it",
    "bad_acta_signature": "the device's signature on the acta does not verify",
    "enroll_wrong_device": "entry {leaf} enrolls device {found}, not the acta's device",
    "enroll_wrong_mesa": "entry {leaf} does not enroll the device for mesa {mesa}",
    "bad_enroll_signature": "the authority's signature on the enrollment in entry {leaf} does not verify",
    "not_enrolled": "the log holds no enrollment of this acta's device for mesa {mesa}",
    "unexpected": "unexpected error: {detail}",
}

_ES: Final = {
    "step_checkpoint": "Punto de control firmado",
    "step_entry": "Acta en el registro",
    "step_inclusion": "Prueba de inclusión",
    "step_signature": "Firma del dispositivo",
    "step_enrollment": "Habilitación del dispositivo",
    "checkpoint_ok": "firmado por la autoridad electoral; el registro tiene {size} entradas; hash raíz {root}",
    "entry_ok": "la entrada {leaf} es el acta de la mesa {mesa}, elección {contest}; su hash de hoja es {hash}",
    "entry_ok_page": (
        "la entrada {leaf} es el acta de la mesa {mesa}, elección {contest}, con exactamente las cifras que "
        "muestra esta página; su hash de hoja es {hash}"
    ),
    "page_mismatch": "esta página muestra {field} = {shown}, pero el acta registrada dice {logged}",
    "inclusion_ok": "la entrada {leaf} está en el árbol firmado de {size} entradas (prueba de {length} hashes)",
    "signature_ok": "el acta está firmada por el dispositivo {device}",
    "enrollment_ok": "entrada {leaf}: la autoridad habilitó el dispositivo {device} para la mesa {mesa}",
    "result_pass": "Verificada: esta acta está en el registro que firmó la autoridad y la firmó un dispositivo "
    "habilitado para su mesa.",
    "result_fail": "La verificación falló en el paso «{step}»; el motivo se indica arriba.",
    "bad_page_data": "los datos de verificación de esta página están incompletos o mal formados",
    "no_webcrypto": "este navegador no ofrece criptografía a esta página (debe servirse por HTTPS)",
    "no_ed25519": "este navegador no puede comprobar firmas Ed25519; use un navegador actualizado o el verificador "
    "de línea de comandos",
    "bad_authority_key": "la clave de la autoridad de esta página no es una cadena de clave válida",
    "fetch_failed": "no se pudo descargar {path} ({detail})",
    "note_malformed": "el punto de control no es una nota firmada bien formada",
    "no_signature": "el punto de control no lleva ninguna firma de la clave de la autoridad {key}",
    "duplicate_signature": "la clave de la autoridad firmó el punto de control más de una vez",
    "bad_signature": "la firma de la autoridad en el punto de control no es válida",
    "origin_mismatch": "el punto de control es del registro {found}, no de {origin}",
    "checkpoint_malformed": "el tamaño del árbol o el hash raíz del punto de control están mal formados",
    "leaf_outside": "la entrada {leaf} no está en el árbol de {size} entradas del punto de control",
    "bundle_malformed": "el bloque de entradas {path} está mal formado",
    "tile_malformed": "el bloque de hashes {path} no tiene la longitud correcta",
    "entry_not_json": "la entrada {leaf} no es un objeto JSON",
    "entry_not_canonical": "la entrada {leaf} no está en forma canónica",
    "wrong_type": "la entrada {leaf} es de tipo «{found}», no «{want}»",
    "wrong_election": "la entrada {leaf} pertenece a otra elección ({found})",
    "wrong_acta": "la entrada {leaf} es el acta de la mesa {found_mesa}, elección {found_contest}, no de la mesa "
    "{mesa}, elección {contest}",
    "proof_malformed": "la prueba de inclusión no corresponde al árbol",
    "root_mismatch": "el hash raíz calculado a partir de la entrada y de los bloques publicados difiere del "
    "del punto de control",
    "device_mismatch": "el acta indica el dispositivo {found}, pero esta página muestra el dispositivo {device}",
    "bad_device_key": "la clave de dispositivo {device} no es una cadena de clave válida",
    "sig_malformed": "el campo de firma de la entrada está mal formado o no está donde lo pone la forma canónica",
    "bad_acta_signature": "la firma del dispositivo en el acta no es válida",
    "enroll_wrong_device": "la entrada {leaf} habilita el dispositivo {found}, no el del acta",
    "enroll_wrong_mesa": "la entrada {leaf} no habilita el dispositivo para la mesa {mesa}",
    "bad_enroll_signature": "la firma de la autoridad en la habilitación de la entrada {leaf} no es válida",
    "not_enrolled": "el registro no contiene ninguna habilitación del dispositivo de esta acta para la mesa {mesa}",
    "unexpected": "error inesperado: {detail}",
}

_PT: Final = {
    "step_checkpoint": "Ponto de controle assinado",
    "step_entry": "Ata no registro",
    "step_inclusion": "Prova de inclusão",
    "step_signature": "Assinatura do dispositivo",
    "step_enrollment": "Habilitação do dispositivo",
    "checkpoint_ok": "assinado pela autoridade eleitoral; o registro tem {size} entradas; hash raiz {root}",
    "entry_ok": "a entrada {leaf} é a ata da mesa {mesa}, cargo {contest}; seu hash de folha é {hash}",
    "entry_ok_page": (
        "a entrada {leaf} é a ata da mesa {mesa}, cargo {contest}, com exatamente os números que esta página "
        "mostra; seu hash de folha é {hash}"
    ),
    "page_mismatch": "esta página mostra {field} = {shown}, mas a ata registrada diz {logged}",
    "inclusion_ok": "a entrada {leaf} está na árvore assinada de {size} entradas (prova de {length} hashes)",
    "signature_ok": "a ata foi assinada pelo dispositivo {device}",
    "enrollment_ok": "entrada {leaf}: a autoridade habilitou o dispositivo {device} para a mesa {mesa}",
    "result_pass": "Verificada: esta ata está no registro que a autoridade assinou, e um dispositivo habilitado "
    "para a sua mesa a assinou.",
    "result_fail": "A verificação falhou na etapa “{step}”; o motivo está indicado acima.",
    "bad_page_data": "os dados de verificação desta página estão incompletos ou malformados",
    "no_webcrypto": "este navegador não oferece criptografia a esta página (ela deve ser servida por HTTPS)",
    "no_ed25519": "este navegador não consegue verificar assinaturas Ed25519; use um navegador atualizado ou o "
    "verificador de linha de comando",
    "bad_authority_key": "a chave da autoridade nesta página não é uma cadeia de chave válida",
    "fetch_failed": "não foi possível baixar {path} ({detail})",
    "note_malformed": "o ponto de controle não é uma nota assinada bem formada",
    "no_signature": "o ponto de controle não traz nenhuma assinatura da chave da autoridade {key}",
    "duplicate_signature": "a chave da autoridade assinou o ponto de controle mais de uma vez",
    "bad_signature": "a assinatura da autoridade no ponto de controle não é válida",
    "origin_mismatch": "o ponto de controle é do registro {found}, não de {origin}",
    "checkpoint_malformed": "o tamanho da árvore ou o hash raiz do ponto de controle estão malformados",
    "leaf_outside": "a entrada {leaf} não está na árvore de {size} entradas do ponto de controle",
    "bundle_malformed": "o bloco de entradas {path} está malformado",
    "tile_malformed": "o bloco de hashes {path} não tem o comprimento correto",
    "entry_not_json": "a entrada {leaf} não é um objeto JSON",
    "entry_not_canonical": "a entrada {leaf} não está na forma canônica",
    "wrong_type": "a entrada {leaf} é do tipo “{found}”, não “{want}”",
    "wrong_election": "a entrada {leaf} pertence a outra eleição ({found})",
    "wrong_acta": "a entrada {leaf} é a ata da mesa {found_mesa}, cargo {found_contest}, não da mesa {mesa}, "
    "cargo {contest}",
    "proof_malformed": "a prova de inclusão não corresponde à árvore",
    "root_mismatch": "o hash raiz calculado a partir da entrada e dos blocos publicados difere do hash do ponto "
    "de controle",
    "device_mismatch": "a ata indica o dispositivo {found}, mas esta página mostra o dispositivo {device}",
    "bad_device_key": "a chave de dispositivo {device} não é uma cadeia de chave válida",
    "sig_malformed": "o campo de assinatura da entrada está malformado ou fora do lugar que a forma canônica exige",
    "bad_acta_signature": "a assinatura do dispositivo na ata não é válida",
    "enroll_wrong_device": "a entrada {leaf} habilita o dispositivo {found}, não o da ata",
    "enroll_wrong_mesa": "a entrada {leaf} não habilita o dispositivo para a mesa {mesa}",
    "bad_enroll_signature": "a assinatura da autoridade na habilitação da entrada {leaf} não é válida",
    "not_enrolled": "o registro não contém nenhuma habilitação do dispositivo desta ata para a mesa {mesa}",
    "unexpected": "erro inesperado: {detail}",
}

MESSAGES: Final[dict[str, dict[str, str]]] = {"en": _EN, "es": _ES, "pt": _PT}
